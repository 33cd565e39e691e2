"""The --state stage: digests made where rows are converted, confirmations recorded in batches.

The sandbox tests wire the stage as the engine does — filter, pack, send, ``answered`` with a
``then`` that writes the journal line — with a list standing in for the journal.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import importer.state.record
from importer.config import BatchLimits, RetryPolicy
from importer.errors import FatalError
from importer.models import Batch, Item, RowRef
from importer.sandbox import SandboxSettings, sandbox_in_thread
from importer.send import BatchResult, BrazeClient, Pacer, Sender, pack, serialised
from importer.state import DeliveryState, DeltaStage, inspect_state, item_digests
from importer.state.delivery import Filtered
from importer.state.delta_stage import CHUNK, FLUSH_ROWS
from importer.state.digest import value_digest
from tests.state.builders import event, exports, item, nights

KEY = "sandbox-key"
POLICY = RetryPolicy(attempts=4, base_s=0.001, cap_s=0.01, request_timeout_s=5.0)


def carried(row: Item, values: bool = True) -> Item:
    """The row as a conversion worker hands it over: its digests made there, pickled across."""
    return row._replace(digests=pickle.loads(pickle.dumps(item_digests(row, values))))


def decided(filtered: Filtered) -> tuple[Item | None, int, int]:
    """A decision, whichever digests it was made with, whether objects came as JSON or not."""
    left = filtered.item
    return (
        None if left is None else left.decoded()._replace(digests=None, wire=None),
        filtered.attributes_unchanged,
        filtered.events_already_sent,
    )


def results_of(rows: list[Item], per_request: int) -> list[BatchResult]:
    """Every row delivered, ``per_request`` rows to a request (packed as the engine packs)."""
    batches = [b for b in pack(rows, BatchLimits(per_request, per_request)) if isinstance(b, Batch)]
    return [BatchResult(b, 201, 1, 0.0, delivered=tuple(range(b.rows))) for b in batches]


def decided_alike(
    mine: DeliveryState,
    theirs: DeliveryState,
    decisions: tuple[list[Filtered], list[Filtered]],
    refused: list[bool],
) -> None:
    """Both states decided alike; each confirms what it kept and Braze did not refuse."""
    plain, made = decisions
    assert list(map(decided, plain)) == list(map(decided, made))
    sent = list(zip(plain, made, refused, strict=True))
    mine.confirm([p.item for p, _, no in sent if p.item is not None and not no])
    theirs.confirm([m.item for _, m, no in sent if m.item is not None and not no])


def facts(path: Path) -> dict[str, Any]:
    """What ``state inspect`` says of a state file, but its path and runs."""
    return {k: v for k, v in inspect_state(path).items() if k not in ("path", "runs")}


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[DeltaStage]:
    with DeliveryState.open(tmp_path / "s.state", run_label="test") as state:
        yield DeltaStage(state)


# --- digests made elsewhere ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports(), st.booleans())
def test_digests_made_in_a_worker_decide_and_record_as_digests_made_here(
    nights: list[tuple[list[Item], list[bool], int]], values: bool
) -> None:
    for rows, refused, batch, mine, theirs in side_by_side(nights):
        for start in range(0, len(rows), batch):
            chunk = range(start, min(start + batch, len(rows)))
            plain = mine.filter_many([rows[i] for i in chunk])
            made = theirs.filter_many([carried(rows[i], values) for i in chunk])
            decided_alike(mine, theirs, (plain, made), [refused[i] for i in chunk])


Night = tuple[list[Item], list[bool], int]  # rows, whether Braze refuses each, rows a chunk


def side_by_side(
    nights: list[Night],
) -> Iterator[tuple[list[Item], list[bool], int, DeliveryState, DeliveryState]]:
    """Each night with two state files open for it: ``mine`` for the main process deciding
    alone, ``theirs`` for the path under test. Once the last night is over, both files must
    hold the same facts."""
    with tempfile.TemporaryDirectory() as tmp:
        here, there = Path(tmp) / "here.state", Path(tmp) / "there.state"
        for rows, refused, batch in nights:
            with (
                DeliveryState.open(here, run_label="night") as mine,
                DeliveryState.open(there, run_label="night") as theirs,
            ):
                yield rows, refused, batch, mine, theirs
        assert facts(here) == facts(there)


def bare(row: Item) -> Item:
    """The row as a worker hands it over when most rows are unchanged: its digests only."""
    digests = carried(row, values=False).digests
    return Item(row.ref, row.record, row.user, digests=digests)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nights(), st.sampled_from(["here", "worker", "worker without values", "digests only"]))
def test_rows_from_a_worker_are_decided_alike_as_json_or_as_digests_only(
    rows: list[Item], made: str
) -> None:
    """A worker hands rows over as JSON (``Item.wire``), with or without their value digests,
    or as digests only (their objects made again by ``objects`` if they are to be sent)."""
    hand_over = {
        "here": serialised,
        "worker": lambda row: serialised(carried(row)),
        "worker without values": lambda row: serialised(carried(row, values=False)),
        "digests only": bare,
    }[made]
    by_ref = {row.ref: row for row in rows}

    def objects(row: Item) -> Item:
        return by_ref[row.ref]

    with tempfile.TemporaryDirectory() as tmp:
        for night in (1, 2):
            with (
                DeliveryState.open(Path(tmp) / "objects.state", run_label="x") as mine,
                DeliveryState.open(Path(tmp) / "worker.state", run_label="x") as theirs,
            ):
                plain = mine.filter_many(rows)
                handed = theirs.filter_many(list(map(hand_over, rows)), objects)
                assert list(map(decided, plain)) == list(map(decided, handed)), night
                mine.confirm(f.item for f in plain[::2] if f.item is not None)
                theirs.confirm(f.item for f in handed[::2] if f.item is not None)


def test_a_row_handed_over_as_digests_only_is_made_again_only_if_something_is_new(
    stage: DeltaStage,
) -> None:
    rows = [item(n, user=f"u{n}", attributes={"a": 1}, events=[event(f"u{n}")]) for n in range(9)]
    stage.state.confirm(f.item for f in stage.state.filter_many(rows) if f.item is not None)
    again = [*rows[:4], item(4, user="u4", attributes={"a": 2}), *rows[5:]]
    remade: list[int] = []

    def objects(row: Item) -> Item:  # the engine converts the row's record again
        remade.append(row.ref.line)
        return again[row.ref.line]

    stage.objects = objects
    out = list(stage.filter(map(bare, again)))
    assert remade == [4]
    assert [type(o).__name__ for o in out] == ["RowSkipped"] * 4 + ["Item"] + ["RowSkipped"] * 4


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
    (user, _, count, values), *_ = left.digests[0]
    assert (user, count, values) == ("xu1", 1, {"city": value_digest("Hamburg")})
    assert left.digests[1] == (again.digests[1][1],)
    stage.state.confirm([left])
    nothing = item(4, attributes={"city": "Hamburg", "vip": True}, events=[event()])
    assert [type(out).__name__ for out in stage.filter([nothing])] == ["RowSkipped"]


def test_value_digests_are_wanted_while_rows_are_new_or_changed(stage: DeltaStage) -> None:
    def night(city: str) -> list[Item]:
        return [
            carried(item(n, user=f"u{n}", attributes={"city": city}), stage.wants_values)
            for n in range(3 * CHUNK)
        ]

    wanted = []
    for city in ("Berlin", "Berlin", "Berlin", "Hamburg"):
        wanted.append(stage.wants_values)
        kept = [out for out in stage.filter(night(city)) if isinstance(out, Item)]
        stage.state.confirm(kept)
    wanted.append(stage.wants_values)
    # New users, then unchanged (one night to notice), then all changed (noticed at once).
    assert wanted == [True, True, False, False, True]


def test_the_state_hashes_values_at_once_while_the_workers_are_asked_to(
    stage: DeltaStage,
) -> None:
    """Rows converted in the main process get their digests from ``filter_many``: while most
    rows need their value digests it makes them in one pass, not whole digests first."""
    wanted = [stage.state.wants_values]
    for n in range(5):  # new users, then the same rows again and again
        rows = [item(n * CHUNK + i, user=f"u{i}", attributes={"city": "B"}) for i in range(CHUNK)]
        stage.state.confirm([out for out in stage.filter(rows) if isinstance(out, Item)])
        assert stage.state.wants_values == stage.wants_values
        wanted.append(stage.wants_values)
    assert wanted == [True, True, True, True, False, False]


# --- confirmations in batches -------------------------------------------------------------------


def test_answers_wait_for_a_flush_and_their_thens_run_in_answer_order(
    stage: DeltaStage, tmp_path: Path
) -> None:
    rows = [
        carried(item(n, user=f"u{n}", attributes={"a": n}, events=[event(f"u{n}")]))
        for n in range(2, 102)
    ]
    kept = [out for out in stage.filter(rows) if isinstance(out, Item)]
    journal: list[tuple[str, int]] = []

    def then(result: BatchResult) -> Callable[[], None]:
        # What the engine writes here, the state must already hold (read by another connection).
        return lambda: journal.append(
            (result.batch.label, inspect_state(tmp_path / "s.state")["events"])
        )

    results = results_of(kept, 10)
    for result in results:
        stage.answered(result, then(result))
    assert journal == [] and stage.pending == len(results)
    stage.flush()
    assert journal == [(r.batch.label, 100) for r in results]
    assert stage.pending == 0
    skipped = stage.filter([carried(row._replace(ref=RowRef("next.csv", 1))) for row in rows])
    assert all(not isinstance(out, Item) for out in skipped)


def test_an_answer_with_nothing_to_record_waits_behind_earlier_ones(stage: DeltaStage) -> None:
    (first,) = results_of([carried(item(2, events=[event()]))], 10)
    nothing = BatchResult(first.batch, 400, 1, 0.0, split=True)  # its halves answer for it
    order: list[str] = []
    stage.answered(nothing, lambda: order.append("alone"))
    assert order == ["alone"]  # nothing queued before it: at once
    stage.answered(first, lambda: order.append("first"))
    stage.answered(nothing, lambda: order.append("split"))
    assert order == ["alone"]
    stage.flush()
    assert order == ["alone", "first", "split"]


def test_a_full_queue_records_itself_in_one_transaction(stage: DeltaStage, tmp_path: Path) -> None:
    rows = [carried(item(n, user=f"u{n}", events=[event(f"u{n}")])) for n in range(FLUSH_ROWS + 75)]
    results = results_of([out for out in stage.filter(rows) if isinstance(out, Item)], 75)
    done: list[int] = []
    flushed_at = None
    for n, result in enumerate(results):
        stage.answered(result, lambda n=n: done.append(n))  # type: ignore[misc]
        if done and flushed_at is None:
            flushed_at = n
    assert flushed_at is not None and (flushed_at + 1) * 75 >= FLUSH_ROWS > flushed_at * 75
    assert done == list(range(flushed_at + 1))
    assert inspect_state(tmp_path / "s.state")["events"] == (flushed_at + 1) * 75
    stage.flush()
    assert done == list(range(len(results)))


def test_a_failed_commit_runs_no_then_and_a_later_flush_records_it(
    stage: DeltaStage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> int:
        raise importer.state.record.sqlite3.OperationalError("disk I/O error")

    rows = [carried(item(2, attributes={"a": 1}, events=[event()]))]
    (result,) = results_of([out for out in stage.filter(rows) if isinstance(out, Item)], 10)
    done: list[str] = []
    stage.answered(result, lambda: done.append("journal"))
    with monkeypatch.context() as patched:
        patched.setattr(importer.state.record, "add_delivered", broken)
        with pytest.raises(FatalError, match="recording deliveries failed"):
            stage.flush()
    assert done == [] and inspect_state(tmp_path / "s.state")["events"] == 0
    stage.flush()
    assert done == ["journal"] and inspect_state(tmp_path / "s.state")["events"] == 1


# --- through the sandbox ------------------------------------------------------------------------


def send_all(url: str, stage: DeltaStage, rows: list[Item], journal: list[Any]) -> None:
    """The engine's wiring, in small: filter, pack, send; the journal line after the state."""
    kept = [out for out in stage.filter(rows) if isinstance(out, Item)]
    batches = [b for b in pack(kept, BatchLimits(10, 10)) if isinstance(b, Batch)]

    def on_result(result: BatchResult) -> None:
        stage.answered(result, lambda: journal.append(result))

    async def main() -> None:
        async with BrazeClient(url, KEY, concurrency=4, timeout_s=5.0) as client:
            sender = Sender(client, Pacer(0), POLICY, on_result, rng=random.Random(1))

            async def worker() -> None:
                while batches:
                    await sender.send(batches.pop(0))

            await asyncio.gather(*(worker() for _ in range(4)))
        stage.flush()

    asyncio.run(main())


def test_refused_objects_are_not_recorded_and_go_out_again_next_night(tmp_path: Path) -> None:
    def night(n: int) -> list[Item]:
        # Row 5's event belongs to u3, whom Braze refuses; its attributes (v3's) are taken.
        rows = [
            item(2 + k, user=f"u{k}", attributes={"a": k}, events=[event(f"u{k}")])
            for k in range(20)
        ]
        rows[3] = item(5, user="v3", attributes={"b": 1}, events=[event("u3")])
        return [carried(row._replace(ref=RowRef(f"night{n}.csv", row.ref.line))) for row in rows]

    path = tmp_path / "s.state"
    with sandbox_in_thread(SandboxSettings(blocked_external_ids=frozenset({"u3"}))) as sandbox:
        for n in (1, 2):
            journal: list[BatchResult] = []
            with DeliveryState.open(path, run_label=f"night {n}") as state:
                send_all(sandbox.url, DeltaStage(state), night(n), journal)
            failed = [f for result in journal for f in result.failures]
            assert [(f.ref.line, f.refused) for f in failed] == [(5, {"events": [0]})]
        attributes = sandbox.accepted("attributes")
        events = sandbox.accepted("events")
    assert len(attributes) == 20  # night 2 sends no attribute again, v3's included
    assert len(events) == 19  # and no event; u3's was refused both nights, tried both nights
    assert inspect_state(path)["events"] == 19
