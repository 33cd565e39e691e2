"""The state file's writes: many rows to a statement count and keep what one at a time would."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.state.lookups import fetch_delivered, fetch_users
from importer.state.store import add_delivered, connect, transaction, write_users
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
