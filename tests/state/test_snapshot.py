"""Verdicts a conversion worker makes from a snapshot of the state file (state.snapshot)."""

from __future__ import annotations

import pickle
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from importer.models import Item
from importer.runner import worker
from importer.send import wire_of
from importer.state import DeliveryState, item_digests
from importer.state.digest import Packed, decode_values
from importer.state.snapshot import StateView, is_verdict
from importer.state.writes import Writes
from tests.state.builders import event, exports, item
from tests.state.test_delta_stage import carried, decided_alike, side_by_side


def handed_over(view: StateView, rows: list[Item]) -> list[Item]:
    """The rows as a worker with ``view`` hands them over: a verdict alone, or the row with its
    digests (pickled across, as the pool does)."""
    answers = pickle.loads(pickle.dumps(view.digests(rows, False)))
    return [
        Item(row.ref, row.record, row.user, digests=d) if is_verdict(d) else row._replace(digests=d)
        for row, d in zip(rows, answers, strict=True)
    ]


def converted_again(rows: list[Item]) -> Callable[[Item], Item]:
    """What the engine's conversion of a row again gives: the row as it was converted."""
    by_ref = {row.ref: row for row in rows}
    return lambda row: by_ref[row.ref]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports(), st.booleans(), st.sampled_from([1, 3, Writes.KEPT]))
def test_verdicts_of_a_snapshot_however_old_decide_and_record_as_the_main_process_does(
    nights: list[tuple[list[Item], list[bool], int]], early: bool, kept: int
) -> None:
    """``early``: every row of a night looked up before its first row is decided, so later
    chunks' verdicts miss what earlier chunks put in flight and what was confirmed since;
    ``kept``: how many written users the main process remembers to judge them by."""
    for rows, refused, batch, mine, theirs in side_by_side(nights):
        theirs._writes.KEPT = kept  # type: ignore[misc]
        objects = converted_again(rows)
        view = StateView(theirs.path, None)
        ahead = handed_over(view, rows) if early else []
        for start in range(0, len(rows), batch):
            chunk = range(start, min(start + batch, len(rows)))
            given = (
                [ahead[i] for i in chunk] if early else handed_over(view, [rows[i] for i in chunk])
            )
            plain = mine.filter_many([rows[i] for i in chunk])
            made = theirs.filter_many(given, objects)
            decided_alike(mine, theirs, (plain, made), [refused[i] for i in chunk])
        view.close()


def test_an_unchanged_row_is_answered_by_a_verdict_and_a_changed_one_with_its_values(
    tmp_path: Path,
) -> None:
    rows = [item(n, f"u{n}", {"a": n, "b": "x"}, [event(f"u{n}")]) for n in range(2, 6)]
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        state.confirm([f.item for f in state.filter_many(rows) if f.item is not None])
    again = [*rows[:2], item(4, "u4", {"a": 5, "b": "x"}, [event("u4")]), rows[3]]
    again.append(item(6, "u6", {"a": 1}))  # a user the state never saw
    with DeliveryState.open(path, run_label="second") as state:
        answers = state.view().digests(again, False)
    assert [is_verdict(d) for d in answers] == [True, True, False, True, False]
    assert answers[0] == (1, 2, 1, ("xu2",))  # commit seen, attributes, events, users
    changed, new = answers[2], answers[4]
    assert changed[0][0][3] is not None and new[0][0][3] is not None  # compared by value
    assert changed[0][0][3] == carried(again[2]).digests[0][0][3]


def test_a_verdict_is_not_taken_for_a_user_an_earlier_row_put_in_flight(tmp_path: Path) -> None:
    """The worker saw u2 unchanged; the row before it in the file changed u2, so u2's second
    row is converted again and sent (its value is not what is in flight)."""
    path = tmp_path / "s.state"
    first = item(2, "u2", {"a": 1})
    with DeliveryState.open(path, run_label="first") as state:
        state.confirm([f.item for f in state.filter_many([first]) if f.item is not None])
    changed, back = item(2, "u2", {"a": 2}), item(3, "u2", {"a": 1})
    remade: list[int] = []

    def objects(row: Item) -> Item:
        remade.append(row.ref.line)
        return back

    with DeliveryState.open(path, run_label="second") as state:
        given = handed_over(state.view(), [changed, back])
        assert [is_verdict(i.digests) for i in given] == [False, True]
        left = state.filter_many(given, objects)  # the earlier row in the same chunk
        assert [f.item is not None for f in left] == [True, True]
        state.filter_many(given[:1])  # in a chunk before: in flight since (not yet answered)
        assert state.filter_many(given[1:], objects)[0].item is not None
    assert remade == [3, 3]


def test_a_verdict_older_than_a_commit_that_wrote_its_user_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        state.confirm([f.item for f in state.filter_many([item(2, "u2", {"a": 1})])])
    with DeliveryState.open(path, run_label="second") as state:
        stale = handed_over(state.view(), [item(3, "u2", {"a": 1})])  # before the change below
        state.confirm([f.item for f in state.filter_many([item(2, "u2", {"a": 2})])])
        left = state.filter_many(stale, lambda row: item(3, "u2", {"a": 1}))
    assert left[0].item is not None  # {"a": 1} again: Braze holds 2 now


def test_a_worker_answers_an_unchanged_row_without_its_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of it will be sent: no JSON, no digests, its verdict alone."""
    path = tmp_path / "s.state"
    rows = [item(2, "u2", {"a": 1}, [event("u2")]), item(3, "u3", {"a": 1})]
    with DeliveryState.open(path, run_label="first") as state:
        state.confirm([f.item for f in state.filter_many(rows[:1]) if f.item is not None])
    with DeliveryState.open(path, run_label="second") as state:
        monkeypatch.setattr(worker, "_digests", state.view())
        unchanged, new = worker._answers([*rows, None], values=False)[:2]
    assert unchanged == ("external_id:u2", None, (1, 1, 1, ("xu2",)), None, None)
    assert new[1] is not None and not is_verdict(new[2])  # type: ignore[index]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_a_worker_answers_a_first_nights_rows_with_their_json_and_digests(
    tmp_path_factory: pytest.TempPathFactory, nights: list[tuple[list[Item], list[bool], int]]
) -> None:
    """Each object serialised once (the whole digest hashes the wire's bytes): the answers are
    the wire ``wire_of`` makes and the digests ``item_digests`` makes on its own."""
    rows = [row for night in nights for row in night[0]]
    path = tmp_path_factory.mktemp("w") / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        saved = worker._digests
        worker._digests = state.view()
        try:
            answers = worker._answers(list(rows), values=True)
        finally:
            worker._digests = saved
    for row, answer in zip(rows, answers, strict=True):
        assert answer == (row.user, wire_of(row), item_digests(row), row.operations, None)


def _users(path: Path) -> dict[str, tuple[bytes | None, dict[int, bytes]]]:
    """Each user's whole digest and value digests as the file stores them, by key."""
    conn = sqlite3.connect(path)
    try:
        found = conn.execute("SELECT key, whole, attrs FROM users").fetchall()
    finally:
        conn.close()
    return {key: (whole, decode_values(attrs)) for key, whole, attrs in found}


def _packed(row: Item) -> bool:
    d = row.digests
    return not is_verdict(d) and len(d[0]) == 1 and type(d[0][0][3]) is Packed


_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
        st.dictionaries(st.sampled_from("abcd"), st.none() | st.integers(0, 2)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ROWS, st.booleans(), st.integers(1, 4))
def test_new_users_a_worker_packed_decide_and_record_as_the_main_process_does(
    drawn: list[tuple[str, dict[str, Any]]], early: bool, batch: int
) -> None:
    """A worker packs a user new to its snapshot (``new_packed``) once the names have ids;
    the main process decides and records such a row as one it made the digests of itself,
    also when the user turns out not to be new there (an earlier chunk's row confirmed since
    the worker's snapshot: ``early``), and both files end with the same users' digests."""
    seed = [item(1, "u0", {"a": 0, "b": 0, "c": 0})]
    rows = [item(n, user, attrs, [event(user)]) for n, (user, attrs) in enumerate(drawn, 2)]
    packs = 0
    with tempfile.TemporaryDirectory() as tmp:
        here, there = Path(tmp) / "here.state", Path(tmp) / "there.state"
        for path in (here, there):
            with DeliveryState.open(path, run_label="seed") as state:
                state.confirm([f.item for f in state.filter_many(seed) if f.item is not None])
        with (
            DeliveryState.open(here, run_label="night") as mine,
            DeliveryState.open(there, run_label="night") as theirs,
        ):
            view = StateView(theirs.path, None)
            starts = range(0, len(rows), batch)
            # early: every chunk handed over before the first is decided, each on its own
            ahead = [r for s in starts for r in handed_over(view, rows[s : s + batch])]
            for start in starts:
                chunk = range(start, min(start + batch, len(rows)))
                given = (
                    ahead[start : chunk.stop]
                    if early
                    else handed_over(view, rows[start : chunk.stop])
                )
                packs += sum(map(_packed, given))
                plain = mine.filter_many(rows[start : chunk.stop])
                made = theirs.filter_many(given, converted_again(rows))
                decided_alike(mine, theirs, (plain, made), [False] * len(chunk))
            view.close()
        assert _users(here) == _users(there)
    assume(packs)
