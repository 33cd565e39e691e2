"""The state file's writes: many rows to a statement count and keep what one at a time would;
the index of row keys is built in one sort after a run that keyed a file without keys."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.state.delivery import DeliveryState
from importer.state.lookups import fetch_delivered, fetch_rows, fetch_users
from importer.state.store import (
    add_delivered,
    build_row_index,
    connect,
    set_wholes,
    transaction,
    write_users,
)
from tests.state.builders import event_key, key


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 600), max_size=700), st.sets(st.integers(0, 600), max_size=300))
def test_writes_of_many_rows_at_once_count_and_keep_what_one_at_a_time_would(
    events: list[int], users: set[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "s.state")
        stored_events = set(events[: len(events) // 2])
        with transaction(conn):
            assert add_delivered(conn, [event_key(n, 0) for n in stored_events]) == len(
                stored_events
            )
            write_users(conn, [(key(n), n, None, b"old", None, None) for n in sorted(users)[::2]])
        with transaction(conn):
            added = add_delivered(conn, [event_key(n, 0) for n in events])  # repeats among them
            write_users(conn, [(key(n), n, bytes(8), b"new", None, None) for n in sorted(users)])
        assert added == len(set(events) - stored_events)
        all_events = [event_key(n, 0) for n in range(601)]
        assert fetch_delivered(conn, all_events) == {event_key(n, 0) for n in events}
        found = fetch_users(conn, [key(n) for n in range(601)])
        assert found == {key(n): (n, bytes(8), b"new") for n in users}
        conn.close()


_CONTENTS = (
    "SELECT key, num, typeof(whole), whole, typeof(attrs), attrs, typeof(row), row, rowc "
    "FROM users ORDER BY key",
    "SELECT typeof(k), k FROM delivered ORDER BY k",
)


def test_blobs_bound_as_bytearrays_are_the_blobs_bytes_would_be(tmp_path: Path) -> None:
    """The writes bind digests as bytearrays (``binding.blobs``: bytes are offered to sqlite3's
    adapters first, at a cost): the file holds what binding the bytes themselves writes,
    and look-ups by bytes find them."""
    users = [(key(n), n, bytes([n]) * 8, bytes([n, 1]) * 6, bytes([n]) * 16, n) for n in range(70)]
    events = [event_key(n, k) for n in range(70) for k in range(4)]
    wholes = {key(n): (None if n % 2 else bytes(8), bytes([n, 2]) * 8, 2) for n in range(0, 70, 3)}
    fast = connect(tmp_path / "fast.state")
    with transaction(fast):
        write_users(fast, users)
        add_delivered(fast, events)
        set_wholes(fast, wholes)
    plain = connect(tmp_path / "plain.state")  # what one row, one bytes value at a time writes
    with transaction(plain):
        plain.executemany(
            "INSERT INTO users (key, num, whole, attrs, row, rowc) VALUES (?, ?, ?, ?, ?, ?)", users
        )
        plain.executemany("INSERT INTO delivered (k) VALUES (?)", [(k,) for k in events])
        plain.executemany(
            "UPDATE users SET whole = coalesce(?, whole), row = ?, rowc = ? WHERE key = ?",
            [(*w, k) for k, w in wholes.items()],
        )
    for query in _CONTENTS:
        assert fast.execute(query).fetchall() == plain.execute(query).fetchall()
    assert {kind for (kind, _) in fast.execute(_CONTENTS[1])} == {"blob"}
    assert fetch_delivered(fast, events[:9]) == set(events[:9])
    assert fetch_rows(fast, [bytes([6, 2]) * 8]) == {bytes([6, 2]) * 8: (key(6), 2)}
    fast.close()
    plain.close()


def _row_index(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"
        return [name for (name,) in conn.execute(query)]


def _write_keyed_user(path: Path, n: int) -> None:
    """A user whose row is remembered, written as a run's commit writes it (another
    connection: the run's own is private)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        write_users(conn, [(key(n), n, bytes(8), b"", bytes([n]) * 16, 1)])


def test_a_run_keying_a_file_without_keys_builds_their_index_as_it_closes(tmp_path: Path) -> None:
    """Inserting random digests into the index commit by commit dirties pages all over it; a
    first night leaves it out and sorts it once at the end. A night that can find keys keeps
    it, and a file whose run was stopped before closing gets it back when next opened."""
    path = tmp_path / "s.state"
    first = DeliveryState.open(path, run_label="first night")
    assert _row_index(path) == []
    _write_keyed_user(path, 1)
    first.close()
    assert _row_index(path) == ["users_row"]
    with DeliveryState.open(path, run_label="second night"):
        assert _row_index(path) == ["users_row"]  # its look-ups go through it
        _write_keyed_user(path, 2)
    stopped = tmp_path / "stopped.state"
    killed = DeliveryState.open(stopped, run_label="killed")  # not closed before the look
    _write_keyed_user(stopped, 3)
    conn = connect(stopped)
    try:
        assert _row_index(stopped) == ["users_row"]
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT key FROM users WHERE row = ?", (b"",))
        assert "users_row" in str(plan.fetchall())
        assert fetch_rows(conn, [bytes([3]) * 16]) == {bytes([3]) * 16: (key(3), 1)}
    finally:
        conn.close()
        killed.close()


class _NoTempFiles:
    """A connection whose temporary directory is full: a statement that spills fails."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.spilling = conn, False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA temp_store="):
            self.spilling = sql.endswith("FILE")
        elif sql.startswith("CREATE INDEX") and self.spilling:
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)


def test_a_sort_that_cannot_spill_builds_the_index_in_memory(tmp_path: Path) -> None:
    """With no room for the sort's temporary files the index is still built (a file left
    without it would fail every later run as it opens)."""
    path = tmp_path / "s.state"
    DeliveryState.open(path, run_label="first night").close()
    _write_keyed_user(path, 1)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("DROP INDEX users_row")
        build_row_index(_NoTempFiles(conn))  # type: ignore[arg-type]
    assert _row_index(path) == ["users_row"]
