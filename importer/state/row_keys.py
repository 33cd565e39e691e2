"""Knowing a row unchanged before converting it: its row key.

What a row converts to is a function of the mapping's text, the source's header (the cells are
positional), the importer's code (its version, and a digest of the converting stages' source:
``code_digest``) and the row's own cells (a JSONL row: its record) — nothing else a converter
reads. So a digest of those, the *row key* (``row_key``: 16 bytes of BLAKE2b
over a per-source ``salt`` and the cells as ``marshal`` makes them), names the row's objects
without making them.

A key is stored beside the whole digest of its user (``users.row``, with the counts the summary
reports in ``users.rowc``) when Braze took the row whole, or the state found it unchanged: its
one attributes object's whole digest is then the stored one, and each of its events and
purchases is delivered. Every write of ``users.whole`` writes ``row`` too (the key, or NULL:
``store``; a release from before keys writes only ``whole``, and a trigger in the file clears
the key then), so a stored key always names the user's current whole digest, and the delivered
table only grows: a row whose key is stored has nothing new. One key per user, so the file
grows by one key a user, never by rows. The next night such a row becomes a ``Verdict`` in
one look-up per chunk (``recognised``) and is never converted; the main process judges it as
any worker's verdict (``snapshot``, ``chunk_digests.made``), and converts it after all when its
user was written or put in flight since.
"""

from __future__ import annotations

import contextlib
import importlib
import marshal
import os
import sqlite3
import sys
import zoneinfo
from collections.abc import Callable, Sequence
from functools import cache
from hashlib import blake2b
from pathlib import Path
from typing import Any, Protocol

import orjson

from importer.models import CsvRecord, Item, RowRef, SourceRow
from importer.state.digest import ItemDigests, Occurrence
from importer.state.lookups import fetch_rows
from importer.state.store import UserRow, Whole

# Bump when what a row converts to changes while the importer's version does not: every key
# stored before then names nothing.
SEMANTICS = 1
_CONVERTING = ("convert", "mapping", "rules")  # the stages a row's objects are made by
KEY_BYTES = 16
_COUNTS = 1 << 32  # users.rowc: attributes * _COUNTS + events and purchases
# marshal's version 2 writes no back-references: its bytes do not depend on which cells happen
# to be one object (version 3 on marks objects whose reference count is over one).
_MARSHAL = 2
_new = tuple.__new__  # an Item without its generated __new__'s frame (as importer.runner.pool)

Memo = tuple[bytes, int]  # (row key, users.rowc): what a user's row remembers of one row
Verdict = tuple[int, int, int, tuple[str, ...]]  # snapshot.Verdict


class Remembering(Protocol):
    """What ``remember`` keeps its keys in (``changes.Delta``)."""

    values: dict[str, Any]  # in flight (InFlight.values)
    deferred: dict[str, Whole]  # stored at the next transaction
    memos: dict[RowRef, Memo]  # stored if Braze takes the row whole


def salt(*parts: Any) -> blake2b:
    """A source's hasher: what, besides its cells, decides what a row converts to (the
    runner's parts: the importer's version, the mapping's text or the default mapping's
    header, the header), the code that converts it (``code_digest``) and what that code
    stands on (``_beneath``)."""
    hasher = blake2b(digest_size=KEY_BYTES)
    hasher.update(marshal.dumps((SEMANTICS, code_digest(), *_beneath(), *parts), _MARSHAL))
    return hasher


@cache
def _beneath() -> tuple[str, ...]:
    """What the converting code stands on and may change under it: Python (datetime,
    zoneinfo), orjson (floats, escaping) and the time zone database (a zone's offsets)."""
    versions = [sys.version, orjson.__version__]
    with contextlib.suppress(ImportError):  # zoneinfo's fallback (tzdata: no type stubs)
        versions.append(str(importlib.import_module("tzdata").IANA_VERSION))
    for directory in zoneinfo.TZPATH:  # the first line of tzdata.zi: "# version 2024a"
        with contextlib.suppress(OSError), open(Path(directory) / "tzdata.zi", "rb") as file:
            versions.append(file.readline().decode("ascii", "replace"))
    return tuple(versions)


@cache
def code_digest() -> bytes:
    """A digest of the source of what makes and counts a row's objects: the version string
    is not bumped by every change that alters a conversion, and a key made by other code
    must name nothing. Read once a process (38 files, ~0.26 MB: ~1.2 ms)."""
    root = Path(__file__).resolve().parent.parent  # the importer package
    files = [root / "models.py", root / "state" / "digest.py", root / "state" / "row_digests.py"]
    for stage in _CONVERTING:
        files += (root / stage).glob("*.py")
    hasher = blake2b(digest_size=KEY_BYTES)
    for path in sorted(files):
        try:
            hasher.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
        except OSError:  # unreadable: no key can be trusted to match another process's
            hasher.update(os.urandom(KEY_BYTES))
    return hasher.digest()


def row_key(hasher: blake2b, data: Any) -> bytes | None:
    """The key of a row whose cells (or record) are ``data``; None if marshal cannot take it."""
    try:
        payload = marshal.dumps(data, _MARSHAL)
    except ValueError:
        return None
    keyed = hasher.copy()
    keyed.update(payload)
    return keyed.digest()


def keys_of(hasher: blake2b, rows: Sequence[SourceRow]) -> list[bytes | None]:
    """The rows' keys: a CSV row's cells, a JSONL row's record."""
    cells = [row.record.cells if isinstance(row.record, CsvRecord) else row.record for row in rows]
    return [row_key(hasher, data) for data in cells]


def converted(
    rows: Sequence[SourceRow],
    hasher: blake2b,
    recognise: Callable[[Sequence[bytes | None]], Sequence[Verdict | None]],
    convert: Callable[[SourceRow], Any],
) -> list[Any]:
    """Each row's outcome, in a conversion worker and in the main process alike: an item with
    the state's verdict only (no objects: ``DeliveryState.filter_many`` converts it after all
    if it cannot take the verdict) when its key is remembered, else ``convert(row)`` as ever,
    an item carrying its key."""
    keys = keys_of(hasher, rows)
    outcomes: list[Any] = []
    for row, key, verdict in zip(rows, keys, recognise(keys), strict=True):
        if verdict is not None:
            item = (row.ref, row.record, verdict[3][0], (), (), (), verdict, None, None, None)
            outcomes.append(_new(Item, item))
            continue
        out = convert(row)
        if key is not None and out.__class__ is Item:  # out._replace(row_key=key), no frames
            out = _new(Item, (*out[:-1], key))  # row_key: the last field
        outcomes.append(out)
    return outcomes


def recognised(
    conn: sqlite3.Connection, keys: Sequence[bytes | None], commit: int
) -> list[Verdict | None]:
    """Per key, the verdict of a row whose key is stored (inside the caller's snapshot, whose
    last commit is ``commit``), else None."""
    wanted = [key for key in keys if key is not None]
    found = fetch_rows(conn, wanted) if wanted else {}
    verdicts: list[Verdict | None] = []
    for key in keys:
        hit = found.get(key) if key is not None else None
        if hit is None:
            verdicts.append(None)
        else:
            user, counts = hit
            verdicts.append((commit, counts // _COUNTS, counts % _COUNTS, (user,)))
    return verdicts


def memo(
    key: bytes | None, digests: ItemDigests, sent: ItemDigests | None, known: set[Occurrence]
) -> Memo | None:
    """What to remember of a row with ``key`` and ``digests`` once its attributes object is
    stored whole, if its key may be stored then: one attributes object with a whole digest,
    and every event and purchase fingerprinted and either delivered (``known``) or sent by
    the row itself (``sent``: the digests of what is left of it; None, nothing). An event left
    out as in flight from an earlier row is neither: that row may yet be refused."""
    if key is None:
        return None
    objects, events, purchases = digests
    if len(objects) != 1 or objects[0] is None or objects[0][1] is None:
        return None
    if events or purchases:
        if sent is not None and sent[1] is events and sent[2] is purchases:
            # The row sends every one itself (most of a first night's rows): no set, no look-up.
            if None in events or None in purchases:
                return None
        else:
            left = set() if sent is None else {*sent[1], *sent[2]}
            for occ in (*events, *purchases):
                if occ is None or not (occ in known or occ in left):
                    return None
    return key, objects[0][2] * _COUNTS + len(events) + len(purchases)


def remember(
    delta: Remembering,
    key: bytes,
    digests: ItemDigests,
    sent: Item | None,
    rows: dict[str, UserRow],
    known: set[Occurrence],
) -> None:
    """Have the row's key stored if it may be (``memo``): once Braze takes it, when something
    of it is ``sent``; else now (``deferred``), when its user's whole digest is the stored one
    or the one about to be, and the user is out of flight."""
    if sent is not None:
        left = sent.digests or digests
        found = memo(key, digests, left, known)
        if found is not None and len(left[0]) == 1:  # its attributes object goes too
            delta.memos[sent.ref] = found
        return
    found = memo(key, digests, None, known)
    if found is None:
        return
    user, whole = digests[0][0][0], digests[0][0][1]  # type: ignore[index]  # memo checked
    if user in delta.values:
        return
    stored, deferred = rows.get(user), delta.deferred.get(user)
    if (stored is not None and stored[1] == whole) or (
        deferred is not None and deferred[0] == whole
    ):
        delta.deferred[user] = (whole, *found)


def remember_vouched(delta: Remembering, key: bytes, verdict: Verdict) -> None:
    """A worker's verdict on a row found unchanged by its digests (its user's whole digest
    the stored one, its events delivered), taken: store its key, the whole digest kept."""
    users = verdict[3]
    if len(users) == 1:
        delta.deferred[users[0]] = (None, key, verdict[1] * _COUNTS + verdict[2])
