"""Data that crosses pipeline stages. Immutable; Braze wire objects are plain dicts.

The three records made once per row (RowRef, SourceRow, Item) are NamedTuples, the rest frozen
dataclasses: both are immutable, and a NamedTuple is built about three times faster (160 vs 476 ns
for Item's six fields, measured here) — one of each per row, millions of rows.

reader    -> SourceRow | RowFailure
converter -> Item | RowFailure | RowSkipped
packer    -> Batch
sender    -> BatchResult (one per request answered)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import orjson

BrazeObject = dict[str, Any]
# An item's objects serialised: per array (ARRAYS order), one JSON fragment per object.
Wire = tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]
ArrayName = Literal["attributes", "events", "purchases"]
ARRAYS: tuple[ArrayName, ...] = ("attributes", "events", "purchases")
Stage = Literal["read", "convert", "validate", "send"]


class RowRef(NamedTuple):
    """Where a record came from: the source as given and its physical start line (1-based)."""

    source: str
    line: int


class CsvRecord:
    """A CSV record as read: the file's header (one tuple shared by all its rows) and the row's
    cells. Cheaper to make and to keep than a dict per row; ``as_dict()`` is the record as
    failures.jsonl shows it (column name -> cell text)."""

    __slots__ = ("cells", "header")

    def __init__(self, header: tuple[str, ...], cells: list[str]) -> None:
        self.header = header
        self.cells = cells

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.header, self.cells, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CsvRecord):
            other = other.as_dict()
        return self.as_dict() == other

    __hash__ = None  # type: ignore[assignment]  # like the dict it stands for

    def __repr__(self) -> str:
        return f"CsvRecord({self.as_dict()!r})"


# A record: CSV rows read from a file are CsvRecords; JSONL lines and the records of failures
# being retried are dicts.
Record = dict[str, Any] | CsvRecord


def record_dict(record: Record) -> dict[str, Any]:
    """The record as a dict (a CsvRecord's column name -> cell text)."""
    return record.as_dict() if isinstance(record, CsvRecord) else record


class SourceRow(NamedTuple):
    """One record as read: a CsvRecord (CSV) or the parsed object (JSONL)."""

    ref: RowRef
    record: Record


@dataclass(frozen=True, slots=True)
class RowFailure:
    """A record that failed at some stage; written to failures.jsonl as it is."""

    ref: RowRef
    stage: Stage
    error: str  # stable code, e.g. bad_encoding, invalid_integer, retries_exhausted
    message: str
    record: Any  # the row as read (dict), or the raw text when it could not be parsed
    objects: dict[str, list[BrazeObject]] | None = None
    attempts: int = 0
    # After a partial refusal: positions, within this row's objects, of the refused ones (so a
    # retry re-sends only those).
    refused: dict[str, list[int]] | None = None


@dataclass(frozen=True, slots=True)
class RowSkipped:
    """A record deliberately not sent (e.g. reason ``no_data``)."""

    ref: RowRef
    reason: str


class Item(NamedTuple):
    """The Braze objects one source row produced; they always travel in one request."""

    ref: RowRef
    record: Record
    user: str  # stable identity key, e.g. "external_id:42"; drives per-user ordering
    attributes: tuple[BrazeObject, ...] = ()
    events: tuple[BrazeObject, ...] = ()
    purchases: tuple[BrazeObject, ...] = ()
    # What ``--state`` needs of these objects (importer.state), computed where the item was
    # made — in a worker process when there are several — so the main process does no hashing.
    # None when --state is off, or once the objects changed (narrowed, filtered).
    digests: Any = None
    # The objects as JSON, one fragment per object and array (ARRAYS order), when they were
    # serialised where the item was made (a worker process). An item that came from a worker
    # carries *only* this — the three tuples above are empty until ``decoded()`` — because
    # unpickling dicts cost the main process ~8 µs per row and the packer needs bytes anyway.
    wire: Wire | None = None
    # The ``[operations] key`` cell of the row: what --state remembers its operations by (None:
    # the source's fingerprint and the line). Read where the digests are made; not kept after.
    operations: str | None = None
    # The row's key (importer.state.row_keys): what --state remembers a row by once Braze took
    # all of it, so that the same row another night is known unchanged before it is converted.
    row_key: bytes | None = None

    @property
    def object_count(self) -> int:
        if self.wire is not None:
            return sum(map(len, self.wire))
        return len(self.attributes) + len(self.events) + len(self.purchases)

    def decoded(self) -> Item:
        """This item with its objects as dicts (itself unless it carries only ``wire``)."""
        wire = self.wire
        if wire is None or self.attributes or self.events or self.purchases:
            return self
        attributes, events, purchases = (tuple(map(orjson.loads, part)) for part in wire)
        return self._replace(attributes=attributes, events=events, purchases=purchases)

    def objects(self) -> dict[str, list[BrazeObject]]:
        item = self.decoded()
        return {name: list(getattr(item, name)) for name in ARRAYS if getattr(item, name)}

    def narrowed(self, refused: dict[str, list[int]]) -> Item | None:
        """The same row with only the objects at the refused positions (None: none left)."""
        item = self.decoded()
        kept = {
            a: tuple(o for i, o in enumerate(getattr(item, a)) if i in refused.get(a, ()))
            for a in ARRAYS
        }
        if not any(kept.values()):
            return None
        objects = kept["attributes"], kept["events"], kept["purchases"]
        return Item(self.ref, self.record, self.user, *objects, operations=self.operations)


class RowSource(Protocol):
    """What a run reads: a file (``importer.read.Source``) or a parent run's failures
    (``importer.rundir.FailureSource``)."""

    name: str
    size: int | None

    @property
    def bytes_read(self) -> int: ...
    def rows(self) -> Iterator[SourceRow | RowFailure]: ...
    def close(self) -> None: ...


class RowConverter(Protocol):
    """What turns a source's rows into Braze objects: ``importer.convert.Converter``, or the
    retry's converter of failed records."""

    def convert(self, row: SourceRow) -> Item | RowFailure | RowSkipped: ...


@dataclass(frozen=True, slots=True)
class Batch:
    """One request: its rows, the body serialised once, and who owns each object.

    Once packed, a row's Braze objects live only in ``body``: keeping every row's dicts until
    Braze answers (40+ requests in flight at full rate) cost ~9% more CPU per row, the allocator
    and the caches working through memory touched 50 ms earlier. ``items()`` rebuilds the
    rows' Items from the body when a failure, a split or ``--state`` needs their objects.

    ``owners[array][i]`` is the index of the row that produced object ``i`` of that array in
    the body; Braze's ``errors[]`` entries (``input_array``, ``index``) map back by it.
    ``merged[i]`` lists the further rows whose attributes were merged into attributes object
    ``i`` (same user, later rows win key by key); ``own_attributes`` keeps, for every row of
    such a merge, its own attributes objects.
    """

    number: int
    refs: tuple[RowRef, ...]
    records: tuple[Record, ...]
    users: tuple[str, ...]
    body: bytes
    owners: dict[str, tuple[int, ...]]
    part: str = ""  # "", or ".1", ".2.1", ... after splits
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    own_attributes: dict[int, tuple[BrazeObject, ...]] = field(default_factory=dict)
    attribute_users: frozenset[str] = frozenset()  # users whose attributes this request sets
    digests: tuple[Any, ...] = ()  # per row, the Item's ``digests`` (empty when --state is off)

    @property
    def label(self) -> str:
        return f"{self.number}{self.part}"

    @property
    def rows(self) -> int:
        return len(self.refs)

    def count(self, array: str) -> int:
        return len(self.owners.get(array, ()))

    def items(self) -> tuple[Item, ...]:
        """Every row as the Item the packer was given (objects decoded from the body)."""
        arrays = orjson.loads(self.body)
        objects: list[tuple[list[BrazeObject], ...]] = [([], [], []) for _ in self.refs]
        for n, array in enumerate(ARRAYS):
            for obj, owner in zip(arrays.get(array, ()), self.owners.get(array, ()), strict=True):
                objects[owner][n].append(obj)
        for row, own in self.own_attributes.items():
            objects[row][0][:] = own
        digests = self.digests or (None,) * len(self.refs)
        return tuple(
            Item(ref, record, user, tuple(attributes), tuple(events), tuple(purchases), digest)
            for ref, record, user, (attributes, events, purchases), digest in zip(
                self.refs, self.records, self.users, objects, digests, strict=True
            )
        )


@dataclass(slots=True)
class ImportStats:
    """Counters of a run. Invariant at the end: rows_read == delivered + failed + sum(skipped)."""

    rows_read: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed_by_code: dict[str, int] = field(default_factory=dict)  # failure code -> records
    objects_sent: dict[str, int] = field(
        default_factory=lambda: {"attributes": 0, "events": 0, "purchases": 0}
    )
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    max_in_flight: int = 0  # most requests awaiting an answer at once (this attempt)
    bytes_read: int = 0
    bytes_total: int | None = None
    elapsed_s: float = 0.0
    rate_limit_wait_s: float = 0.0  # time every worker stood still on the server's word
    attributes_unchanged: int = 0  # --state: attribute values left out, equal to the last sent
    events_already_sent: int = 0  # --state: events and purchases left out, already delivered
    waiting_until: float | None = None  # epoch seconds, during a long server-requested wait
    status: str = "running"

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def fail_code(self, code: str) -> None:
        self.failed_by_code[code] = self.failed_by_code.get(code, 0) + 1

    def as_summary(self) -> dict[str, Any]:
        elapsed = round(self.elapsed_s, 3)
        return {
            "rows_read": self.rows_read,
            "delivered": self.delivered,
            "failed": self.failed,
            "skipped": dict(self.skipped),
            "failed_by_code": dict(sorted(self.failed_by_code.items())),
            "objects_sent": dict(self.objects_sent),
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "ambiguous": self.ambiguous,
            "max_in_flight": self.max_in_flight,
            "elapsed_s": elapsed,
            "rows_per_s": round(self.rows_read / elapsed, 1) if elapsed > 0 else 0.0,
            "requests_per_s": round(self.requests / elapsed, 1) if elapsed > 0 else 0.0,
            "rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
            "attributes_unchanged": self.attributes_unchanged,
            "events_already_sent": self.events_already_sent,
            "status": self.status,
        }
