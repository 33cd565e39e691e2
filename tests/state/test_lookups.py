"""The state file's batched look-ups: a range scan over neighbours answers as look-ups by key do."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.state.lookups import Neighbours, fetch_delivered, fetch_users
from importer.state.store import add_delivered, connect, transaction, write_users
from tests.state.builders import event_key, key


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
            write_users(conn, [(key(n), n, None, b"", None, None) for n in stored])
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
            write_users(conn, [(key(n), n, None, b"", None, None) for n in range(10_000)])
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
