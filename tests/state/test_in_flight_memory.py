"""What a first night's rows hold while they wait for Braze's answer: their digests (the packer
keeps them to confirm with, and their users go in flight), packed once decided."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from importer.state.delivery import DeliveryState
from tests.state.builders import event, item

ROWS = 500
# 22 attributes as a CRM row carries, one of them unset, and an event
ATTRIBUTES: dict[str, Any] = {f"field_{k}": f"value {k}" for k in range(21)} | {"gone": None}


def test_a_first_nights_rows_in_flight_hold_their_value_digests_packed(tmp_path: Path) -> None:
    """A new user's 22 value digests took ~2 KB as a dict of bytes, held by the row and by
    what is in flight until Braze answers (~300 requests of 75 rows at the ceiling); packed as
    the users table will store them, ~300 bytes. Confirmed, they record what the dicts did:
    the counters, and a second night that finds every row unchanged."""
    rows = [
        item(n, user=f"u{n}", attributes=ATTRIBUTES, events=[event(user=f"u{n}")])
        for n in range(2, ROWS + 2)
    ]
    with DeliveryState.open(tmp_path / "s.state", run_label="first") as state:
        first = state.filter_many([item(1, user="u0", attributes=ATTRIBUTES)])
        state.confirm([f.item for f in first if f.item is not None])  # the names are stored
        gc.collect()
        tracemalloc.start()
        try:
            filtered = state.filter_many(rows)
            held = tracemalloc.get_traced_memory()[0] / ROWS
        finally:
            tracemalloc.stop()
        assert all(f.item is not None for f in filtered)
        assert held < 1_800, f"{held:.0f} bytes a row in flight"  # packed ~1,360; dicts ~2,820
        state.confirm([f.item for f in filtered if f.item is not None])
        counts = state.inspect()
    assert (counts["users"], counts["attribute_values"]) == (ROWS + 1, 22 * (ROWS + 1))
    assert (counts["attributes_unset"], counts["events"]) == (ROWS + 1, ROWS)
    with DeliveryState.open(tmp_path / "s.state", run_label="second") as state:
        again = state.filter_many(rows)
    assert {(f.item, f.attributes_unchanged, f.events_already_sent) for f in again} == {
        (None, 22, 1)
    }
