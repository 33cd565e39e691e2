"""Recording what Braze confirmed: one transaction per call, every write an ``executemany``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from importer.models import Item
from importer.state.changes import Delta, Digests, Occurrence, occurrence
from importer.state.digest import (
    UNSET,
    decode_values,
    delivered_key,
    encode_values,
    event_fingerprint,
    identity_of,
    purchase_fingerprint,
)
from importer.state.store import (
    UserRow,
    add_delivered,
    add_name,
    bump_counters,
    fetch_users,
    next_user_number,
    set_wholes,
    transaction,
    write_users,
)

Update = tuple[str, Digests, bytes | None]  # (user, digests of the confirmed keys, whole digest)


def record_deliveries(conn: sqlite3.Connection, delta: Delta, items: Iterable[Item]) -> None:
    """Remember the confirmed objects of ``items`` and take them out of flight."""
    updates: list[Update] = []
    events: list[Occurrence] = []
    purchases: list[Occurrence] = []
    for item in items:
        for obj in item.attributes:
            identity = identity_of(obj)
            if identity is not None:
                user = identity[1]
                updates.append((user, *delta.settle(item.ref, user, identity[0], obj)))
        for objects, fingerprint, into in (
            (item.events, event_fingerprint, events),
            (item.purchases, purchase_fingerprint, purchases),
        ):
            for obj in objects:
                occ = occurrence(obj, fingerprint)
                if occ is not None:
                    into.append(occ)
                    delta.occurrences.discard(occ)
    if not (updates or events or purchases):
        return
    # First seen, first numbered: tomorrow's export in the same order reads neighbouring pages.
    users = dict.fromkeys([u for u, _, _ in updates] + [occ[0] for occ in (*events, *purchases)])
    with transaction(conn):
        flush_deferred(conn, delta)
        rows = fetch_users(conn, users)
        numbers, counts = _number_users(conn, users, rows)
        new_names: dict[str, int] = {}
        counts |= _write_users(conn, delta, updates, rows, numbers, new_names)
        counts["events"] = add_delivered(conn, (delivered_key(numbers[u], fp) for u, fp in events))
        counts["purchases"] = add_delivered(
            conn, (delivered_key(numbers[u], fp) for u, fp in purchases)
        )
        bump_counters(conn, counts)
    delta.names.update(new_names)


def flush_deferred(conn: sqlite3.Connection, delta: Delta) -> None:
    """Store the whole digests of users found unchanged (inside the caller's transaction)."""
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


def _write_users(
    conn: sqlite3.Connection,
    delta: Delta,
    updates: list[Update],
    rows: dict[str, UserRow],
    numbers: dict[str, int],
    new_names: dict[str, int],
) -> dict[str, int]:
    """Merge confirmed digests into the users' rows; new users get a row even without any."""
    counts = {"attribute_values": 0, "attributes_unset": 0}
    merged: dict[str, tuple[dict[int, bytes], list[bytes | None]]] = {}
    for user, digests, whole in updates:
        if user not in merged:
            row = rows.get(user)
            merged[user] = (decode_values(row[2] if row else None), [None])
        values, last_whole = merged[user]
        last_whole[0] = whole  # the user's last object decides: earlier ones are overwritten
        for name, digest in digests:
            name_id = _name_id(conn, delta, name, new_names)
            old = values.pop(name_id, None)
            counts["attribute_values"] -= old is not None
            counts["attributes_unset"] -= old == UNSET
            if digest is not None:  # None: an operator, the value is no longer known
                values[name_id] = digest
                counts["attribute_values"] += 1
                counts["attributes_unset"] += digest == UNSET
    written = [
        (user, numbers[user], whole[0], encode_values(values))
        for user, (values, whole) in merged.items()
    ]
    written += [
        (user, numbers[user], None, b"") for user in numbers.keys() - merged.keys() - rows.keys()
    ]
    write_users(conn, written)
    return counts


def _name_id(conn: sqlite3.Connection, delta: Delta, name: str, new_names: dict[str, int]) -> int:
    name_id = delta.names.get(name)
    if name_id is None:
        name_id = new_names.get(name)
        if name_id is None:
            name_id = new_names[name] = add_name(conn, name)
    return name_id
