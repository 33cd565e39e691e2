"""--state and attribute operations (inc, add, remove): each remembered like an event, by the
``[operations] key`` cell or else the source's fingerprint and line, so a resume, a retry or the
same file again never applies one twice, and another night's file applies its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from importer.models import Item, RowRef
from importer.state.delivery import DeliveryState, inspect_state
from tests.state.test_delivery import deliver, reopen


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def op_item(source: str, line: int, key: str | None = None, **values: Any) -> Item:
    obj = {"external_id": "u1", **values}
    ref = RowRef(source, line)
    return Item(ref, {}, "external_id:u1", attributes=(obj,), operations=key)


def sent(filtered: Any) -> dict[str, Any] | None:
    return None if filtered.item is None else filtered.item.attributes[0]


def test_the_same_file_again_applies_no_operation_twice(tmp_path: Path) -> None:
    source = _file(tmp_path, "night1.csv", "id,points\nu1,5\nu1,3\n")
    rows = [
        op_item(source, 2, points={"inc": 5}, tags={"add": ["a"]}, plan="gold"),
        op_item(source, 3, points={"inc": 3}, tags={"remove": ["a"]}),
    ]
    path = tmp_path / "s.state"
    with DeliveryState.open(path, run_label="first") as state:
        assert [sent(f) for f in deliver(state, *rows)] == [r.attributes[0] for r in rows]
        assert state.inspect()["operations"] == 4  # two attributes of two rows
    with reopen(path) as state:
        assert [f.item for f in state.filter_many(rows)] == [None, None]
        # A new value beside a delivered operation goes alone.
        again = op_item(source, 2, points={"inc": 5}, tags={"add": ["a"]}, plan="silver")
        assert sent(state.filter(again)) == {"external_id": "u1", "plan": "silver"}


def test_another_nights_file_applies_its_own_deltas_even_when_equal(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    first = _file(tmp_path, "export.csv", "id,points\nu1,5\n")
    with DeliveryState.open(path, run_label="first") as state:
        deliver(state, op_item(first, 2, points={"inc": 5}))
    second = _file(tmp_path, "export.csv", "id,points\nu1,5\n\n")  # tonight's, same name
    with reopen(path) as state:
        assert sent(state.filter(op_item(second, 2, points={"inc": 5}))) == {
            "external_id": "u1",
            "points": {"inc": 5},
        }


def test_with_a_key_the_key_names_the_operation_whatever_file_or_line(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    night1 = _file(tmp_path, "a.csv", "x\n")
    night2 = _file(tmp_path, "b.csv", "y\n")
    with DeliveryState.open(path, run_label="first") as state:
        deliver(state, op_item(night1, 2, "T1", points={"inc": 5}))
        # The same transaction twice in one file: applied once.
        assert state.filter(op_item(night1, 9, "T1", points={"inc": 5})).item is None
    with reopen(path) as state:
        old, new = state.filter_many(
            [
                op_item(night2, 7, "T1", points={"inc": 5}),
                op_item(night2, 8, "T2", points={"inc": 5}),
            ]
        )
        assert old.item is None and sent(new) == {"external_id": "u1", "points": {"inc": 5}}


def test_a_refused_or_released_operation_is_sent_again(tmp_path: Path) -> None:
    source = _file(tmp_path, "n.csv", "x\n")
    row = op_item(source, 2, points={"inc": 1})
    with DeliveryState.open(tmp_path / "s.state", run_label="t") as state:
        (left,) = state.filter_many([row])
        assert left.item is not None
        assert state.filter(row).item is None  # in flight: a duplicate waits
        state.release([left.item])
        assert state.filter(row).item is not None


def test_without_a_fingerprint_or_key_operations_are_always_sent(tmp_path: Path) -> None:
    with DeliveryState.open(tmp_path / "s.state", run_label="t") as state:
        row = op_item("s3://bucket/export.csv", 2, points={"inc": 1})
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
    source = _file(tmp_path, "n.csv", "x\n")
    with DeliveryState.open(path, run_label="t") as state:
        deliver(state, op_item(source, 2, points={"inc": 1}))
        assert state.inspect()["operations"] == 1  # the row is back, and counts
