"""The --state stage: digests made where rows are converted decide and record like any."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.models import Item
from importer.send import serialised
from importer.state import DeliveryState, DeltaStage, inspect_state, item_digests
from importer.state.delivery import Filtered
from importer.state.digest import value_digest
from tests.state.builders import event, exports, item, nights


def carried(row: Item) -> Item:
    """The row as a conversion worker hands it over: its digests made there, pickled across."""
    return row._replace(digests=pickle.loads(pickle.dumps(item_digests(row))))


def decided(filtered: Filtered) -> tuple[Item | None, int, int]:
    """A decision, whichever digests it was made with, whether objects came as JSON or not."""
    left = filtered.item
    return (
        None if left is None else left.decoded()._replace(digests=None, wire=None),
        filtered.attributes_unchanged,
        filtered.events_already_sent,
    )


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[DeltaStage]:
    with DeliveryState.open(tmp_path / "s.state", run_label="test") as state:
        yield DeltaStage(state)


# --- digests made elsewhere ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_digests_made_in_a_worker_decide_and_record_as_digests_made_here(
    nights: list[tuple[list[Item], list[bool], int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        here, there = Path(tmp) / "here.state", Path(tmp) / "there.state"
        for rows, refused, batch in nights:
            with (
                DeliveryState.open(here, run_label="night") as mine,
                DeliveryState.open(there, run_label="night") as theirs,
            ):
                for start in range(0, len(rows), batch):
                    chunk = range(start, min(start + batch, len(rows)))
                    plain = mine.filter_many([rows[i] for i in chunk])
                    made = theirs.filter_many([carried(rows[i]) for i in chunk])
                    assert list(map(decided, plain)) == list(map(decided, made))
                    sent = [
                        (p.item, m.item, refused[i])
                        for i, p, m in zip(chunk, plain, made, strict=True)
                    ]
                    mine.confirm([p for p, _, no in sent if p is not None and not no])
                    theirs.confirm([m for _, m, no in sent if m is not None and not no])
            facts = inspect_state(here), inspect_state(there)
            assert [{k: v for k, v in f.items() if k not in ("path", "runs")} for f in facts] == [
                {k: v for k, v in facts[1].items() if k not in ("path", "runs")}
            ] * 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nights(), st.sampled_from(["here", "worker"]))
def test_rows_carrying_their_objects_as_json_only_are_decided_alike(
    rows: list[Item], digests: str
) -> None:
    """A worker hands rows over as JSON (``Item.wire``); with or without their digests."""
    as_json = [serialised(carried(row) if digests == "worker" else row) for row in rows]
    with tempfile.TemporaryDirectory() as tmp:
        for night in (1, 2):
            with (
                DeliveryState.open(Path(tmp) / "objects.state", run_label="x") as objects,
                DeliveryState.open(Path(tmp) / "json.state", run_label="x") as json,
            ):
                plain, wired = objects.filter_many(rows), json.filter_many(as_json)
                assert list(map(decided, plain)) == list(map(decided, wired)), night
                objects.confirm(f.item for f in plain[::2] if f.item is not None)
                json.confirm(f.item for f in wired[::2] if f.item is not None)


def test_a_narrowed_row_carries_the_digests_of_what_is_left(stage: DeltaStage) -> None:
    first = item(2, attributes={"city": "Berlin", "vip": True}, events=[event(order=1)])
    stage.state.confirm([carried(first)])
    again = carried(
        item(3, attributes={"city": "Hamburg", "vip": True}, events=[event(order=1), event()])
    )
    (left,) = stage.filter([again])
    assert isinstance(left, Item) and left.digests is not None
    assert left.attributes == ({"external_id": "u1", "city": "Hamburg"},)
    assert left.events == (event(),)
    (user, _, values), *_ = left.digests[0]
    assert (user, values) == ("xu1", {"city": value_digest("Hamburg")})
    assert left.digests[1] == (again.digests[1][1],)
    stage.state.confirm([left])
    nothing = item(4, attributes={"city": "Hamburg", "vip": True}, events=[event()])
    assert [type(out).__name__ for out in stage.filter([nothing])] == ["RowSkipped"]
