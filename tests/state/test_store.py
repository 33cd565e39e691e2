"""The state file's batched look-ups: a range scan over neighbours answers as look-ups by key do."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.state.store import (
    Neighbours,
    add_delivered,
    connect,
    fetch_delivered,
    fetch_users,
    transaction,
    write_users,
)


def key(n: int) -> str:
    return f"xU{n:06d}"


def event_key(n: int, k: int) -> bytes:
    return n.to_bytes(5, "big") + k.to_bytes(8, "big")


@settings(max_examples=40, deadline=None)
@given(
    st.sets(st.integers(0, 3_000), min_size=1, max_size=1_500),
    st.lists(st.integers(0, 3_000), max_size=1_200),
    st.integers(1, 6),
)
def test_a_range_scan_finds_what_look_ups_by_key_find(
    stored: set[int], asked: list[int], events: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "s.state")
        with transaction(conn):
            write_users(conn, [(key(n), n, None, b"") for n in stored])
            add_delivered(conn, [event_key(n, k) for n in stored for k in range(events)])
        users, delivered = Neighbours(), Neighbours()
        wanted = [event_key(n, k) for n in asked for k in (0, events)]  # one stored, one not
        for _ in range(2):  # the second time after any fall-back to look-ups by key
            assert fetch_users(conn, map(key, asked), users) == fetch_users(conn, map(key, asked))
            assert fetch_delivered(conn, wanted, delivered) == fetch_delivered(conn, wanted)
        conn.close()


def test_spread_out_keys_fall_back_to_look_ups_by_key() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "s.state")
        with transaction(conn):
            write_users(conn, [(key(n), n, None, b"") for n in range(10_000)])
        near = Neighbours()
        every_tenth = [key(n) for n in range(0, 10_000, 10)]
        found = fetch_users(conn, every_tenth[:500], near)
        assert near.scan(conn, "unused: paused", ["a"]) is None  # the scan met 10× the rows
        neighbours = [key(n) for n in range(500)]
        for _ in range(Neighbours.PAUSE):
            fetch_users(conn, neighbours, near)
        assert near.scan(
            conn, "SELECT key FROM users WHERE key BETWEEN ? AND ? LIMIT ?", neighbours
        )
        conn.close()
    assert sorted(found) == every_tenth[:500]


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
            write_users(conn, [(key(n), n, None, b"old") for n in sorted(users)[::2]])
        with transaction(conn):
            added = add_delivered(conn, [event_key(n, 0) for n in events])  # repeats among them
            write_users(conn, [(key(n), n, bytes(8), b"new") for n in sorted(users)])
        assert added == len(set(events) - stored_events)
        all_events = [event_key(n, 0) for n in range(601)]
        assert fetch_delivered(conn, all_events) == {event_key(n, 0) for n in events}
        found = fetch_users(conn, [key(n) for n in range(601)])
        assert found == {key(n): (n, bytes(8), b"new") for n in users}
        conn.close()
