"""--state and attribute operations (inc, add, remove): each remembered like an event, by the
``[operations] key`` cell or else the fingerprint the run recorded for the source and the line
(``DeliveryState.operation_sources``, set by the runner from run.json), so a resume, a retry or
the same file again never applies one twice, and another night's file applies its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.models import Item, RowRef
from importer.state.delivery import DeliveryState, inspect_state
from importer.state.digest import operation_digest, operations_of, value_digest
from importer.state.row_digests import item_digests, with_values
from tests.state.builders import exports
from tests.state.test_delivery import deliver, reopen
from tests.state.test_delta_stage import Night, decided_alike, side_by_side

# What the runner takes from run.json: each source's recorded fingerprint, by source name.
NIGHT1 = {"export.csv": "night-1-fingerprint"}
NIGHT2 = {"export.csv": "night-2-fingerprint"}


def _named(state: DeliveryState, sources: dict[str, str]) -> DeliveryState:
    state.operation_sources = sources
    return state


def op_item(source: str, line: int, key: str | None = None, **values: Any) -> Item:
    obj = {"external_id": "u1", **values}
    ref = RowRef(source, line)
    return Item(ref, {}, "external_id:u1", attributes=(obj,), operations=key)


def sent(filtered: Any) -> dict[str, Any] | None:
    return None if filtered.item is None else filtered.item.attributes[0]


def test_the_same_file_again_applies_no_operation_twice(tmp_path: Path) -> None:
    source = "export.csv"
    rows = [
        op_item(source, 2, points={"inc": 5}, tags={"add": ["a"]}, plan="gold"),
        op_item(source, 3, points={"inc": 3}, tags={"remove": ["a"]}),
    ]
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        _named(state, NIGHT1)
        assert [sent(f) for f in deliver(state, *rows)] == [r.attributes[0] for r in rows]
        assert state.inspect()["operations"] == 4  # two attributes of two rows
    with reopen(path) as state:
        _named(state, dict(NIGHT1))
        assert [f.item for f in state.filter_many(rows)] == [None, None]
        # A new value beside a delivered operation goes alone.
        again = op_item(source, 2, points={"inc": 5}, tags={"add": ["a"]}, plan="silver")
        assert sent(state.filter(again)) == {"external_id": "u1", "plan": "silver"}


def test_another_nights_file_applies_its_own_deltas_even_when_equal(tmp_path: Path) -> None:
    """Same name, same line, same delta: another recorded fingerprint is another operation."""
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        deliver(_named(state, NIGHT1), op_item("export.csv", 2, points={"inc": 5}))
    with reopen(path) as state:
        assert sent(_named(state, NIGHT2).filter(op_item("export.csv", 2, points={"inc": 5}))) == {
            "external_id": "u1",
            "points": {"inc": 5},
        }


def test_with_a_key_the_key_names_the_operation_whatever_file_or_line(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    night1, night2 = "a.csv", "b.csv"  # no recorded fingerprints: the key is enough
    with DeliveryState.open(path, run_label="first") as state:
        _named(state, {})
        deliver(state, op_item(night1, 2, "T1", points={"inc": 5}))
        # The same transaction twice in one run: the later row is refused, naming the first.
        again = state.filter(op_item(night1, 9, "T1", points={"inc": 5}))
        assert again.item is None and again.repeats == RowRef(night1, 2)
    with reopen(path) as state:
        _named(state, {})
        old, new = state.filter_many(
            [
                op_item(night2, 7, "T1", points={"inc": 5}),
                op_item(night2, 8, "T2", points={"inc": 5}),
            ]
        )
        assert old.item is None and sent(new) == {"external_id": "u1", "points": {"inc": 5}}
        assert (old.operations_delivered, old.attributes_unchanged, old.repeats) == (1, 0, None)


def test_a_refused_or_released_operation_is_sent_again(tmp_path: Path) -> None:
    row = op_item("export.csv", 2, points={"inc": 1})
    with DeliveryState.open(tmp_path / "s.state", run_label="t") as state:
        _named(state, NIGHT1)
        (left,) = state.filter_many([row])
        assert left.item is not None
        assert state.filter(row).item is None  # in flight: a duplicate waits
        state.release([left.item])
        assert state.filter(row).item is not None


def test_without_a_fingerprint_or_key_operations_are_always_sent(tmp_path: Path) -> None:
    """(The runner refuses such a run up front: tests/end_to_end/test_operations_state.py.)"""
    with DeliveryState.open(tmp_path / "s.state", run_label="t") as state:
        _named(state, {})  # stdin: nothing recorded
        row = op_item("-", 2, points={"inc": 1})
        deliver(state, row)
        assert sent(state.filter(row)) == {"external_id": "u1", "points": {"inc": 1}}


def test_a_state_file_from_before_operations_gains_the_counter(tmp_path: Path) -> None:
    path = tmp_path / "old.state"
    with DeliveryState.open(path, run_label="t"):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta WHERE key = 'operations'")
    conn.commit()
    conn.close()
    assert inspect_state(path)["operations"] == 0  # not stored: counted as none
    with DeliveryState.open(path, run_label="t") as state:
        deliver(_named(state, NIGHT1), op_item("export.csv", 2, points={"inc": 1}))
        assert state.inspect()["operations"] == 1  # the row is back, and counts


def test_only_keyed_operations_are_kept_to_catch_a_repeated_key(tmp_path: Path) -> None:
    """A row named by fingerprint and line can never repeat another's operation: keeping each
    (~100 bytes) for the whole run would cost ~300 MB a million rows for nothing."""
    with DeliveryState.open(tmp_path / "s.state", run_label="first") as state:
        _named(state, NIGHT1)
        unkeyed = [op_item("export.csv", line, points={"inc": 1}) for line in range(2, 50)]
        state.filter_many(unkeyed)
        assert state._delta.operation_rows == {}
        keyed = [op_item("export.csv", 60, "T1", points={"inc": 1})]
        state.filter_many(keyed)
        assert list(state._delta.operation_rows.values()) == [RowRef("export.csv", 60)]
        repeated = state.filter(op_item("export.csv", 61, "T1", points={"inc": 1}))
        assert repeated.item is None and repeated.repeats == RowRef("export.csv", 60)


def test_a_run_that_sends_its_first_operation_late_remembers_it(tmp_path: Path) -> None:
    """Until a run sends an operation nothing looks for one (``sent_operations``): the first
    one, after plain rows of new users were confirmed, is still remembered, and released
    ones are taken out of flight."""
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        _named(state, NIGHT1)
        plain = Item(
            RowRef("export.csv", 2), {}, "external_id:u0", ({"external_id": "u0", "a": 1},)
        )
        deliver(state, plain)
        assert not state.sent_operations
        refused = state.filter(op_item("export.csv", 3, points={"inc": 2}))
        assert state.sent_operations and refused.item is not None
        state.release([refused.item])
        deliver(
            state,
            op_item("export.csv", 3, points={"inc": 2}),
            op_item("export.csv", 4, p={"inc": 1}),
        )
        assert state.inspect()["operations"] == 2
    with reopen(path) as state:
        _named(state, dict(NIGHT1))
        assert state.filter(op_item("export.csv", 3, points={"inc": 2})).item is None
        assert state.filter(plain).item is None


def test_without_values_an_operation_is_named_when_its_object_is_compared() -> None:
    """A mapping with a json field "may carry" operations; still, on a night where little
    changed (``values=False``) no object gets its value digests up front, not even one
    carrying an operation: a whole digest equal to the stored one tells that the object
    carries none (none is ever stored whole), so it is looked for only in the objects
    compared value by value, whose values ``with_values`` adds, naming their operations."""
    plain = op_item("export.csv", 2, plan="gold", prefs={"theme": "dark"})
    operation = op_item("export.csv", 3, plan="gold", points={"inc": 1})
    for row in (plain, operation):
        (objects, _, _) = item_digests(row, values=False, sources=NIGHT1)
        assert objects[0] is not None and objects[0][1] is not None and objects[0][3] is None
        assert objects[0][2] == 2
    late = with_values(operation, item_digests(operation, values=False, sources=NIGHT1), NIGHT1)
    assert late == item_digests(operation, sources=NIGHT1)
    assert late[0][0] == (
        "xu1",
        None,
        2,
        {
            "plan": value_digest("gold"),
            "points": operation_digest("fnight-1-fingerprint:3", "points", {"inc": 1}),
        },
    )


def test_a_changed_row_beside_a_delivered_operation_without_values(tmp_path: Path) -> None:
    """Digests made without values (a worker's, on a night where little changed): a changed
    user's values are added late, and its delivered operation is still left out."""
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        deliver(_named(state, NIGHT1), op_item("export.csv", 2, points={"inc": 5}, plan="gold"))
    with reopen(path) as state:
        _named(state, dict(NIGHT1))
        again = op_item("export.csv", 2, points={"inc": 5}, plan="silver")
        carried = again._replace(digests=item_digests(again, False, NIGHT1))
        assert sent(state.filter(carried)) == {"external_id": "u1", "plan": "silver"}


def test_an_object_with_an_operation_has_no_whole_digest() -> None:
    """A whole digest must never stand for an operation; so an object that has one carries
    none, and nothing looks through its values for operations (``operations_of``)."""
    plain = op_item("export.csv", 2, plan="gold", prefs={"theme": "dark"})
    operation = op_item("export.csv", 3, plan="gold", points={"inc": 1})
    (objects, _, _) = item_digests(plain, sources=NIGHT1)
    assert objects[0] is not None and objects[0][1] is not None
    assert operations_of(objects[0]) == []
    (objects, _, _) = item_digests(operation, sources=NIGHT1)
    assert objects[0] is not None and objects[0][1] is None
    assert operations_of(objects[0]) == [("xu1", objects[0][3]["points"][1:])]  # type: ignore[index]


_operators = st.sampled_from([None, {"inc": 1}, {"inc": 2}, {"add": ["x"]}])


@st.composite
def _nights_with_operations(draw: st.DrawFn) -> list[Night]:
    """``exports`` whose attributes objects may carry an operation; a line's operation is the
    same every night (one file, one fingerprint), so a delivered one is left out after."""
    nights = []
    for rows, refused, batch in draw(exports()):
        ops = draw(st.lists(_operators, min_size=len(rows), max_size=len(rows)))
        carrying = [
            row._replace(attributes=({**row.attributes[0], "points": op},))
            if op is not None and row.attributes
            else row
            for row, op in zip(rows, ops, strict=True)
        ]
        nights.append((carrying, refused, batch))
    return nights


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nights_with_operations())
def test_operations_are_decided_alike_with_values_made_up_front_or_only_when_compared(
    nights: list[Night],
) -> None:
    """Without values up front (``wants_values`` False) an operation is found only in an
    object compared by value, and its delivered key is looked up with the chunk's all the
    same: the decisions and the stored facts are those of values made up front."""
    for rows, refused, batch, mine, theirs in side_by_side(nights):
        _named(mine, dict(NIGHT1)).wants_values = True
        _named(theirs, dict(NIGHT1)).wants_values = False
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            made = (mine.filter_many(chunk), theirs.filter_many(chunk))
            decided_alike(mine, theirs, made, refused[start : start + batch])
