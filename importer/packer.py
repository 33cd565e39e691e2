"""Items -> Batch: group the objects of whole rows into requests within Braze's limits.

Every object is serialised exactly once (orjson); a body is the join of those fragments, so its
size is known before it exists and a request never crosses the object or byte limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from importer.config import BatchLimits
from importer.models import ARRAYS, Batch, Item, RowFailure

# {"attributes":[...],"events":[...],"purchases":[...]} around the fragments.
_ENVELOPE_BYTES = len(b'{"attributes":[],"events":[],"purchases":[]}')


@dataclass(slots=True)
class _Open:
    """The request being filled."""

    items: list[Item] = field(default_factory=list)
    fragments: dict[str, list[bytes]] = field(default_factory=lambda: {a: [] for a in ARRAYS})
    owners: dict[str, list[int]] = field(default_factory=lambda: {a: [] for a in ARRAYS})
    size: int = _ENVELOPE_BYTES

    @property
    def total(self) -> int:
        return sum(len(f) for f in self.fragments.values())


def _serialise(item: Item) -> dict[str, list[bytes]]:
    return {a: [orjson.dumps(obj) for obj in getattr(item, a)] for a in ARRAYS}


def _item_size(fragments: dict[str, list[bytes]]) -> int:
    # One comma per fragment is an upper bound on the separators it adds.
    return sum(len(f) + 1 for frags in fragments.values() for f in frags)


def _oversize(item: Item, fragments: dict[str, list[bytes]], limits: BatchLimits) -> str | None:
    counts = {a: len(fragments[a]) for a in ARRAYS}
    if sum(counts.values()) > limits.total or max(counts.values()) > limits.per_array:
        return (
            f"the row produced {sum(counts.values())} objects "
            f"({', '.join(f'{n} {a}' for a, n in counts.items() if n)}); "
            f"one request holds at most {limits.total} ({limits.per_array} per array)"
        )
    if _item_size(fragments) + _ENVELOPE_BYTES > limits.max_body_bytes:
        return f"the row's objects take more than {limits.max_body_bytes} bytes"
    return None


def _fits(batch: _Open, fragments: dict[str, list[bytes]], limits: BatchLimits) -> bool:
    added = sum(len(f) for f in fragments.values())
    if batch.total + added > limits.total:
        return False
    if any(len(batch.fragments[a]) + len(fragments[a]) > limits.per_array for a in ARRAYS):
        return False
    return batch.size + _item_size(fragments) <= limits.max_body_bytes


def _close(batch: _Open, number: int, part: str = "") -> Batch:
    body = (
        b"{"
        + b",".join(
            b'"' + a.encode() + b'":[' + b",".join(batch.fragments[a]) + b"]"
            for a in ARRAYS
            if batch.fragments[a]
        )
        + b"}"
    )
    owners: dict[str, tuple[int, ...]] = {
        a: tuple(batch.owners[a]) for a in ARRAYS if batch.owners[a]
    }
    return Batch(number=number, items=tuple(batch.items), body=body, owners=owners, part=part)


def _add(batch: _Open, item: Item, fragments: dict[str, list[bytes]]) -> None:
    index = len(batch.items)
    batch.items.append(item)
    for a in ARRAYS:
        frags = fragments[a]
        if frags:
            batch.fragments[a].extend(frags)
            batch.owners[a].extend([index] * len(frags))
    batch.size += _item_size(fragments)


def pack(
    items: Iterable[Item], limits: BatchLimits, *, first_number: int = 1
) -> Iterator[Batch | RowFailure]:
    """Yield full batches as they fill, then the last partial one.

    A row whose objects can never fit one request is yielded as a RowFailure (stage validate).
    """
    number = first_number
    batch = _Open()
    for item in items:
        fragments = _serialise(item)
        if not _fits(batch, fragments, limits):
            problem = _oversize(item, fragments, limits)
            if problem:
                yield RowFailure(
                    ref=item.ref,
                    stage="validate",
                    error="row_too_large",
                    message=problem,
                    record=item.record,
                    objects=item.objects(),
                )
                continue
            yield _close(batch, number)
            number += 1
            batch = _Open()
        _add(batch, item, fragments)
    if batch.items:
        yield _close(batch, number)


def split(batch: Batch) -> tuple[Batch, Batch]:
    """Halve a batch (by rows) into two new requests; used after 413 or a refused 400."""
    middle = len(batch.items) // 2
    halves = (batch.items[:middle], batch.items[middle:])
    out = []
    for suffix, items in zip((".1", ".2"), halves, strict=True):
        half = _Open()
        for item in items:
            _add(half, item, _serialise(item))
        out.append(_close(half, batch.number, batch.part + suffix))
    return out[0], out[1]
