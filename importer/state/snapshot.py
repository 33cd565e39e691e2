"""Looking rows up in the state file, and verdicts a conversion worker makes from a snapshot.

Both sides look up a chunk of rows the same way (``look_up``: the users, then the delivered
keys of their events, purchases and operations). The main process does it in
``DeliveryState.filter_many``; with workers, each worker first does it for the rows it just
converted (``StateView``, a read-only connection: WAL lets readers run beside the main
process's writes). On a night where little changed most rows are unchanged, and all the main
process needs of one is a count: the worker answers such a row with a ``Verdict`` only — no
objects as JSON, no digests — so nobody serialises, pickles, unpickles or looks up again what
will not be sent. A row that may have changed comes back whole, with the value digests it
will be compared by when its user is new or changed.

A snapshot is older than the main process's decision: in between, the main process may have
put the user in flight, or recorded a confirmation for it. So a verdict carries the number of
the last commit its snapshot saw (``store.commit_number``), and the main process takes it only
when no later commit wrote any of its users (``Writes``) and none of them is in flight or
compared by an earlier row of the chunk; otherwise the row is converted again and decided as
any other. Then every verdict taken is the one the main process would have made itself.
Events and purchases need no such care: the delivered table only grows, and a user's number
never changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from importer.models import Item
from importer.state.digest import (
    ItemDigests,
    Occurrence,
    OperationSources,
    delivered_key,
    operations_of,
    packed,
)
from importer.state.lookups import Neighbours, fetch_delivered, fetch_users
from importer.state.row_digests import item_digests, with_values
from importer.state.row_keys import recognised
from importer.state.store import UserRow, commit_number, load_names

# A row with nothing new, as a worker saw it: (the last commit its snapshot saw, attributes
# left out, events and purchases left out, the users of its attributes objects). Four long:
# ``ItemDigests`` are three.
Verdict = tuple[int, int, int, tuple[str, ...]]
LookedUp = tuple[dict[str, UserRow], set[Occurrence]]  # stored users' rows, known occurrences


def is_verdict(digests: Any) -> bool:
    return len(digests) == 4


def users_of(digests: Iterable[ItemDigests]) -> set[str]:
    users: set[str] = set()
    add = users.add
    for objects, events, purchases in digests:  # plain loops: cheaper than generators here
        for obj in objects:
            if obj is not None:
                add(obj[0])
        for occ in events:
            if occ is not None:
                add(occ[0])
        for occ in purchases:
            if occ is not None:
                add(occ[0])
    return users


def stored_keys(
    digests: Iterable[ItemDigests], rows: dict[str, UserRow], operations: bool = True
) -> dict[bytes, Occurrence]:
    """The delivered-table keys to look up: occurrences of users the state knows (and their
    operations, unless the mapping has none)."""
    wanted: dict[bytes, Occurrence] = {}
    for objects, events, purchases in digests:  # plain loops, no tuple of the two: once per row
        if operations:
            for obj in objects:
                if obj is not None and obj[3] and obj[0] in rows:
                    for operation in operations_of(obj):
                        wanted[delivered_key(rows[obj[0]][0], operation[1])] = operation
        for occ in events:
            if occ is not None:
                row = rows.get(occ[0])
                if row is not None:
                    wanted[delivered_key(row[0], occ[1])] = occ
        for occ in purchases:
            if occ is not None:
                row = rows.get(occ[0])
                if row is not None:
                    wanted[delivered_key(row[0], occ[1])] = occ
    return wanted


def look_up(
    conn: sqlite3.Connection,
    digests: Sequence[ItemDigests],
    operations: bool,
    near: tuple[Neighbours, Neighbours] | None = None,
) -> LookedUp:
    """The stored rows of these items' users and which of their occurrences are delivered."""
    rows = stored_users(conn, digests, near)
    return rows, delivered(conn, digests, rows, operations, near)


def stored_users(
    conn: sqlite3.Connection,
    digests: Sequence[ItemDigests],
    near: tuple[Neighbours, Neighbours] | None = None,
) -> dict[str, UserRow]:
    """The stored rows of these items' users (``look_up``'s first half)."""
    users = users_of(digests)
    return fetch_users(conn, users, near[0] if near else None) if users else {}


def delivered(
    conn: sqlite3.Connection,
    digests: Sequence[ItemDigests],
    rows: dict[str, UserRow],
    operations: bool,
    near: tuple[Neighbours, Neighbours] | None = None,
) -> set[Occurrence]:
    """Which of these items' occurrences (and operations: only those of objects with value
    digests are known) are delivered (``look_up``'s second half)."""
    wanted = stored_keys(digests, rows, operations) if rows else {}
    found = fetch_delivered(conn, wanted, near[1] if near else None) if wanted else ()
    return {wanted[key] for key in found}


def verdict(
    commit: int, digests: ItemDigests, rows: dict[str, UserRow], known: set[Occurrence]
) -> Verdict | None:
    """``Delta.unchanged`` without what only the main process knows (what is in flight)."""
    objects, events, purchases = digests
    attributes = 0
    users: list[str] = []
    for obj in objects:
        if obj is None:
            return None
        row = rows.get(obj[0])
        if row is None or obj[1] is None or row[1] != obj[1]:
            return None
        attributes += obj[2]
        users.append(obj[0])
    if not all_known(digests, known):
        return None
    return commit, attributes, len(events) + len(purchases), tuple(users)


def all_known(digests: ItemDigests, known: set[Occurrence]) -> bool:
    """Were all the item's events and purchases delivered (and has it any object at all)?"""
    objects, events, purchases = digests
    for occ in events:
        if occ not in known:  # None (no fingerprint) never is
            return False
    for occ in purchases:
        if occ not in known:
            return False
    return bool(objects or events or purchases)


def compared(digests: ItemDigests, rows: dict[str, UserRow]) -> bool:
    """Will an attributes object of this item be compared value by value (a new or changed
    user) and still lack its value digests?"""
    for obj in digests[0]:
        if obj is not None and obj[3] is None:
            row = rows.get(obj[0])
            if row is None or obj[1] is None or row[1] != obj[1]:
                return True
    return False


def new_packed(
    digests: ItemDigests, rows: dict[str, UserRow], names: dict[str, int], earlier: set[str]
) -> ItemDigests:
    """``digests`` with the value digests ``Packed`` as the users table stores them, when its
    row is one attributes object with a whole digest of a user new to the snapshot and to the
    chunk's ``earlier`` rows (a first night's rows): what ``Delta`` packs of a new user as it
    goes in flight, made here. A dict of ~21 digests cost the worker's pickling and the main
    process's unpickling and packing ~40 K instructions a row. Not when a name has no id in
    the snapshot (a fresh file's first rows); the main process makes a dict of it again when
    the user turns out not to be new there (``Delta.compared_digests``)."""
    objects = digests[0]
    if len(objects) != 1 or (obj := objects[0]) is None:
        earlier.update([obj[0] for obj in objects if obj is not None])
        return digests
    user, values = obj[0], obj[3]
    if user in earlier or user in rows:
        return digests
    earlier.add(user)
    if obj[1] is None or type(values) is not dict or not values or len(values) > len(names):
        return digests  # one carrying an operation (no whole digest), or nothing to pack
    pack = packed(values, names)
    return digests if pack is None else (((user, obj[1], obj[2], pack),), digests[1], digests[2])


class StateView:
    """The state file as a conversion worker reads it: picklable, opened where it is used."""

    def __init__(self, path: Path | str, sources: OperationSources, keyed: bool = True) -> None:
        self.path = str(Path(path).resolve())
        self.sources = sources
        # Did the file hold row keys when the run began? If not (a first night, the first
        # after upgrading), no look-up of a key is made: a row this run keys is a later row's
        # only by repeating it, and the digests decide that as exactly.
        self.keyed = keyed
        self._conn: sqlite3.Connection | None = None
        self._broken = False  # it could not be read: every row comes back whole
        self._near = (Neighbours(), Neighbours())
        self._names: dict[str, int] = {}  # attribute name -> id, as the snapshot stores them
        self._names_seen = -1  # the commit they were read at

    def __getstate__(self) -> tuple[str, OperationSources, bool]:
        return self.path, self.sources, self.keyed

    def __setstate__(self, state: tuple[str, OperationSources, bool]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def digests(
        self,
        items: Sequence[Item],
        values: bool,
        fragments: Sequence[tuple[bytes, ...] | None] | None = None,
    ) -> list[ItemDigests | Verdict]:
        """Per item its ``Verdict`` when nothing of it is new, else its digests: with value
        digests when it will be compared by value (or ``values``: when it could not be told).
        ``fragments``: per item, its attributes objects' JSON (see ``item_digests``)."""
        sources = self.sources
        made = zip(items, fragments or [None] * len(items), strict=True)
        digests = [item_digests(item, False, sources, f) for item, f in made]
        try:
            commit, (rows, known) = self._look_up(digests)
        except sqlite3.Error:  # never fail a row for it: the main process looks it up again
            self._broken = True
            return [
                with_values(i, d, sources) if values else d
                for i, d in zip(items, digests, strict=True)
            ]
        answers: list[ItemDigests | Verdict] = []
        earlier: set[str] = set()  # users of the chunk's rows so far, not new to a later one
        for item, d in zip(items, digests, strict=True):
            found = verdict(commit, d, rows, known)
            if found is not None:
                answers.append(found)
            elif compared(d, rows):  # its operations named: the main process looks them up
                answers.append(
                    new_packed(with_values(item, d, sources), rows, self._names, earlier)
                )
            else:
                answers.append(d)
        return answers

    def recognise(self, keys: Sequence[bytes | None]) -> list[Verdict | None]:
        """Per row key (``row_keys``), the row's verdict when the state remembers the row, so
        it need not be converted; None for the others (all of them if the file cannot be read:
        they are converted and looked up as ever)."""
        if self._broken or not self.keyed or not any(keys):
            return [None] * len(keys)
        try:
            conn = self._connection()
            conn.execute("BEGIN")  # one snapshot for the commit number and the look-up
            try:
                return recognised(conn, keys, commit_number(conn))
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error:
            self._broken = True
            return [None] * len(keys)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _look_up(self, digests: Sequence[ItemDigests]) -> tuple[int, LookedUp]:
        if self._broken:
            raise sqlite3.OperationalError("the state file could not be read")
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot for the commit number and the look-ups
        try:
            commit = commit_number(conn)
            if commit != self._names_seen:  # ids never change; a commit may add names
                self._names, self._names_seen = load_names(conn), commit
            return commit, look_up(conn, digests, self.sources is not None, self._near)
        finally:
            conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            uri = f"{Path(self.path).as_uri()}?mode=ro"
            conn = self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            conn.execute("PRAGMA mmap_size=0")  # as the main process: see store.connect
        return conn
