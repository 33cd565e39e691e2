"""The packer: limits, byte caps, ownership of every object, rows never split."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.config import BatchLimits
from importer.models import ARRAYS, Batch, Item, RowFailure, RowRef
from importer.send.client import RefusedObject
from importer.send.packer import pack, split
from importer.send.sender import map_object_errors


def _obj(user: str, n: int, pad: int) -> dict[str, object]:
    return {"external_id": user, f"k{n % 3}": n, "pad": "x" * pad, "f": n / 7}


@st.composite
def items(draw: st.DrawFn) -> list[Item]:
    """Rows with 0-4 objects per array; users often repeat, so attributes get merged."""
    count = draw(st.integers(0, 60))
    users = draw(st.integers(1, 80))
    out = []
    for line in range(2, count + 2):
        user = str(draw(st.integers(0, users)))
        shape = [draw(st.integers(0, 4)) for _ in ARRAYS]
        pad = draw(st.integers(0, 300))
        objects = {
            a: tuple(_obj(user, line * 10 + i, pad) for i in range(n))
            for a, n in zip(ARRAYS, shape, strict=True)
        }
        record = {"line": str(line)}
        out.append(Item(RowRef("f.csv", line), record, f"external_id:{user}", **objects))
    return out


limit_sets = st.sampled_from(
    [
        BatchLimits(total=75, per_array=75),
        BatchLimits(total=225, per_array=75),
        BatchLimits(total=5, per_array=3),
        BatchLimits(total=10, per_array=10, max_body_bytes=2_000),
    ]
)


def _check_batch(batch: Batch, limits: BatchLimits) -> None:
    body = orjson.loads(batch.body)
    assert len(batch.body) <= limits.max_body_bytes
    assert sum(len(v) for v in body.values()) <= limits.total
    items = batch.items()
    merged_rows = {row for rows in batch.merged.values() for row in rows}
    for array in ARRAYS:
        objects = body.get(array, [])
        assert len(objects) <= limits.per_array
        owners = batch.owners.get(array, ())
        assert len(owners) == len(objects)
        for index, owner in enumerate(owners):
            if array == "attributes" and index in batch.merged:
                # The merged object: every row's keys, the later rows' values winning.
                expected: dict[str, object] = {}
                for row in (owner, *batch.merged[index]):
                    expected.update(items[row].attributes[0])
                assert objects[index] == expected
            else:
                assert objects[index] in getattr(items[owner], array)
        if array == "attributes":
            assert not merged_rows & set(owners)  # a merged row has no object of its own


@settings(max_examples=200, deadline=None)
@given(items(), limit_sets)
def test_every_row_lands_once_in_order_within_limits(rows: list[Item], limits: BatchLimits) -> None:
    """And ``Batch.items()`` gives back exactly the rows that went in, objects and all."""
    packed: list[Item] = []
    failed: list[int] = []
    for out in pack(rows, limits):
        if isinstance(out, RowFailure):
            assert out.error == "row_too_large"
            failed.append(out.ref.line)
            continue
        _check_batch(out, limits)
        assert out.refs == tuple(item.ref for item in out.items())
        packed.extend(out.items())
    assert packed == [item for item in rows if item.ref.line not in failed]


@settings(max_examples=100, deadline=None)
@given(items(), limit_sets)
def test_split_halves_keep_every_row_and_stay_valid(rows: list[Item], limits: BatchLimits) -> None:
    for out in pack(rows, limits):
        if isinstance(out, Batch) and out.rows > 1:
            first, second = split(out)
            assert first.items() + second.items() == out.items()
            assert first.label == f"{out.number}.1" and second.label == f"{out.number}.2"
            _check_batch(first, limits)
            _check_batch(second, limits)


def test_batch_numbers_count_up_and_full_batches_are_full() -> None:
    rows = [
        Item(RowRef("f", n), {}, f"u{n}", attributes=({"external_id": str(n)},))
        for n in range(2, 2 + 160)
    ]
    batches = [b for b in pack(rows, BatchLimits(total=75, per_array=75)) if isinstance(b, Batch)]
    assert [b.number for b in batches] == [1, 2, 3]
    assert [b.rows for b in batches] == [75, 75, 10]


def test_a_row_with_more_objects_than_a_request_holds_fails_alone() -> None:
    big = Item(RowRef("f", 2), {"a": 1}, "u", events=tuple({"name": str(i)} for i in range(76)))
    small = Item(RowRef("f", 3), {}, "v", events=({"name": "x"},))
    out = list(pack([big, small], BatchLimits(total=75, per_array=75)))
    assert isinstance(out[0], RowFailure) and out[0].ref.line == 2
    assert "76 objects" in out[0].message
    assert isinstance(out[1], Batch) and out[1].items() == (small,)


def test_body_is_compact_json_without_empty_arrays() -> None:
    row = Item(RowRef("f", 2), {}, "u", attributes=({"external_id": "1", "a": "é"},))
    (batch,) = pack([row], BatchLimits(total=75, per_array=75))
    assert isinstance(batch, Batch)
    assert batch.body == b'{"attributes":[{"external_id":"1","a":"\xc3\xa9"}]}'


def test_rows_of_one_user_in_one_request_share_one_attributes_object() -> None:
    rows = [
        Item(
            RowRef("f", 2), {}, "external_id:a", attributes=({"external_id": "a", "x": 1, "y": 1},)
        ),
        Item(RowRef("f", 3), {}, "external_id:b", attributes=({"external_id": "b", "x": 5},)),
        Item(
            RowRef("f", 4),
            {},
            "external_id:a",
            attributes=({"external_id": "a", "x": 2},),
            events=({"external_id": "a", "name": "e"},),
        ),
    ]
    (batch,) = pack(rows, BatchLimits(total=75, per_array=75))
    assert isinstance(batch, Batch)
    body = orjson.loads(batch.body)
    assert body["attributes"] == [
        {"external_id": "a", "x": 2, "y": 1},
        {"external_id": "b", "x": 5},
    ]
    assert batch.owners["attributes"] == (0, 1) and batch.merged == {0: (2,)}
    assert batch.owners["events"] == (2,)
    assert batch.attribute_users == {"external_id:a", "external_id:b"}
    # A refusal of the merged object fails both rows that made it, each with its own object.
    _, failures = map_object_errors(batch, (RefusedObject("attributes", 0, "bad"),), attempts=1)
    assert sorted(f.ref.line for f in failures) == [2, 4]
    by_line = {f.ref.line: f for f in failures}
    assert by_line[4].objects == {"attributes": [{"external_id": "a", "x": 2}]}
    assert by_line[4].refused == {"attributes": [0]}
