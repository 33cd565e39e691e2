"""Recording what Braze confirmed: one transaction per call, every write an ``executemany``.

The caller groups many answered requests into one call (``DeltaStage.flush``): a transaction
and its look-ups cost about as much for one request as for fifty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from operator import countOf
from typing import Any

from importer.models import RowRef
from importer.state.changes import Delta
from importer.state.digest import (
    DIGEST_BYTES,
    ENTRY_BYTES,
    UNSET,
    ItemDigests,
    Occurrence,
    Packed,
    ValueDigests,
    decode_values,
    delivered_key,
    encode_pairs,
    encode_values,
    operations_of,
)
from importer.state.lookups import Neighbours, fetch_users
from importer.state.row_keys import Memo
from importer.state.store import (
    UserRow,
    UserWrite,
    add_delivered,
    add_name,
    bump_counters,
    next_user_number,
    set_wholes,
    transaction,
    write_users,
)

_NO_ROW = (None, None)
Confirmed = tuple[RowRef, ItemDigests]  # a row Braze took: the digests of what it took
# (user, confirmed value digests, whole digest, the users-table blob of a new user's object
# when every value is a remembered one under a stored name — else None —, how many are unset,
# and the row's key and counts when its key is stored with that whole digest: see row_keys)
Update = tuple[str, ValueDigests | Packed, bytes | None, bytes | None, int, Memo | None]


def record_deliveries(
    conn: sqlite3.Connection,
    delta: Delta,
    confirmed: Iterable[Confirmed],
    near: Neighbours | None = None,
) -> dict[str, None] | None:
    """Remember the confirmed objects and take them out of flight (rows in input order).
    ``near``: look the users up with range scans while they are neighbours (``fetch_users``);
    on a first night one scan finds that 500 new users are not there, not 500 look-ups.
    Returns the users whose rows were written (None: nothing was, and no commit counted)."""
    updates, events, purchases, operations = _out_of_flight(delta, confirmed)
    if not (updates or events or purchases):
        return None
    # First seen, first numbered: tomorrow's export in the same order reads neighbouring pages.
    users = dict.fromkeys([u[0] for u in updates] + [occ[0] for occ in (*events, *purchases)])
    with transaction(conn):
        flush_deferred(conn, delta)
        rows = fetch_users(conn, users, near)
        numbers, counts = _number_users(conn, users, rows)
        new_names = _add_names(conn, delta.names, updates)
        counts |= _write_users(conn, delta.names | new_names, updates, rows, numbers)
        counts["events"] = add_delivered(conn, (delivered_key(numbers[u], fp) for u, fp in events))
        counts["purchases"] = add_delivered(
            conn, (delivered_key(numbers[u], fp) for u, fp in purchases)
        )
        if operations:
            counts["operations"] = add_delivered(
                conn, (delivered_key(numbers[u], fp) for u, fp in operations)
            )
        counts["commits"] = 1  # see store.commit_number
        bump_counters(conn, counts)
    delta.names.update(new_names)
    return users


def _out_of_flight(
    delta: Delta, confirmed: Iterable[Confirmed]
) -> tuple[list[Update], list[Occurrence], list[Occurrence], list[Occurrence]]:
    """What to write for the confirmed rows, each taken out of flight: attribute updates,
    events, purchases and operations."""
    updates: list[Update] = []
    events: list[Occurrence | None] = []
    purchases: list[Occurrence | None] = []
    operations: list[Occurrence] = []
    settle, in_flight, name_ids, memos = delta.settle, delta.values, delta.names, delta.memos
    with_operations = delta.sent_operations  # else no value digest is an operation's
    plain = _plain if with_operations else _compared
    for ref, (objects, event_occs, purchase_occs) in confirmed:
        row = memos.pop(ref, None) if memos else None  # its key, if it may be stored
        for obj in objects:
            if obj is not None:
                user, values = obj[0], obj[3]
                assert values is not None  # what was sent was compared
                blob, unset = None, 0
                fresh = in_flight.get(user) is values  # a new user's row (see InFlight.values)
                whole = settle(ref, user)
                if isinstance(values, Packed):  # a new user's, encoded as it went in flight
                    if fresh:
                        memo = None if whole is None else row
                        updates.append((user, values, whole, values.blob, values.unset, memo))
                        continue
                    values = delta.unpacked(values)  # its user had another row in flight
                # Encoded now, while its digests are in the CPU's cache: a pass over 2,000 rows'
                # dicts later misses it for every row, and a first night has only new users.
                # A new user's whole digest is kept only when every value is plain (_new_user).
                elif fresh and (whole is not None or plain(values)):
                    try:
                        blob = encode_pairs(map(name_ids.__getitem__, values), values.values())
                        unset = countOf(values.values(), UNSET)
                    except KeyError:  # a name not stored yet: encoded later
                        blob = None
                updates.append((user, values, whole, blob, unset, None if whole is None else row))
                if with_operations and blob is None:  # a blob's values are plain: no operation
                    operations += operations_of(obj)
        events += event_occs
        purchases += purchase_occs
    delivered_events = [occ for occ in events if occ is not None]
    delivered_purchases = [occ for occ in purchases if occ is not None]
    delta.occurrences.difference_update(delivered_events, delivered_purchases, operations)
    return updates, delivered_events, delivered_purchases, operations


def _compared(values: ValueDigests) -> bool:
    """``_plain`` for a mapping without operations: every value was compared."""
    return None not in values.values()


def _plain(values: ValueDigests) -> bool:
    """Is every value digest a remembered value (no operation, nothing left uncompared)?"""
    for digest in values.values():  # noqa: SIM110 - a loop: no generator per row
        if digest is None or len(digest) > DIGEST_BYTES:
            return False
    return True


def flush_deferred(conn: sqlite3.Connection, delta: Delta) -> None:
    """Store the whole digests (and row keys) of users found unchanged (inside the caller's
    transaction)."""
    if delta.deferred:
        set_wholes(conn, delta.deferred)
        delta.deferred.clear()


def _number_users(
    conn: sqlite3.Connection, users: dict[str, None], rows: dict[str, UserRow]
) -> tuple[dict[str, int], dict[str, int]]:
    """Every user's number; new users get the next ones. Also the counter deltas."""
    first = next_number = next_user_number(conn)
    numbers: dict[str, int] = {}
    for user in users:
        row = rows.get(user)
        if row is None:
            numbers[user] = next_number
            next_number += 1
        else:
            numbers[user] = row[0]
    added = next_number - first
    return numbers, {"users": added, "next_user": added}


def _add_names(
    conn: sqlite3.Connection, names: dict[str, int], updates: list[Update]
) -> dict[str, int]:
    """Ids for the attribute names the state has not stored yet (rare: a new mapping field)."""
    new_names: dict[str, int] = {}
    for _, values, _, blob, _, _ in updates:
        # A blob's names are stored (a Packed one always comes with its blob).
        if blob is None and isinstance(values, dict) and not names.keys() >= values.keys():
            for name in values:
                if name not in names and name not in new_names:
                    new_names[name] = add_name(conn, name)
    return new_names


def _write_users(
    conn: sqlite3.Connection,
    names: dict[str, int],
    updates: list[Update],
    rows: dict[str, UserRow],
    numbers: dict[str, int],
) -> dict[str, int]:
    """Merge confirmed digests into the users' rows; new users get a row even without any."""
    counts = {"attribute_values": 0, "attributes_unset": 0}
    written: list[UserWrite] = []
    merged: dict[str, tuple[dict[int, bytes], list[Any]]] = {}
    updated = {update[0] for update in updates}
    once = len(updates) == len(updated)
    for user, values, whole, blob, unset, memo in updates:
        key, rowc = memo or _NO_ROW
        if once and blob is not None and user not in rows:
            # The common case, a new user's one object: encoded from its digests already.
            written.append((user, numbers[user], whole, blob, key, rowc))
            counts["attribute_values"] += len(blob) // ENTRY_BYTES  # len(values): no call
            counts["attributes_unset"] += unset
            continue
        entry = merged.get(user)
        if entry is None:
            row = rows.get(user)
            entry = merged[user] = (decode_values(row[2] if row else None), [None, None, None])
            _count(counts, entry[0], -1)
        stored, last = entry
        last[:] = whole, key, rowc  # the user's last object decides: earlier ones overwritten
        if isinstance(values, Packed):  # plain digests under stored names
            stored.update(decode_values(values.blob))
            continue
        for name, digest in values.items():
            if digest is None or len(digest) > DIGEST_BYTES:  # an operation: value unknown now
                stored.pop(names[name], None)
            else:
                stored[names[name]] = digest
    for user, (stored, (whole, key, rowc)) in merged.items():
        _count(counts, stored, 1)
        written.append((user, numbers[user], whole, encode_values(stored), key, rowc))
    new_users = numbers.keys() - rows.keys() - updated
    written += [(user, numbers[user], None, b"", None, None) for user in new_users]
    write_users(conn, written)
    return counts


def _count(counts: dict[str, int], stored: dict[int, bytes], sign: int) -> None:
    if stored:
        counts["attribute_values"] += sign * len(stored)
        counts["attributes_unset"] += sign * countOf(stored.values(), UNSET)
