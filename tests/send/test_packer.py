"""The packer: limits, byte caps, ownership of every object, rows never split."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.config import BatchLimits
from importer.models import ARRAYS, Batch, Item, RowFailure, RowRef
from importer.rules import apply_attribute, combine_attributes
from importer.send.client import RefusedObject
from importer.send.item_json import serialised
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
                expected: dict[str, Any] | None = items[owner].attributes[0]
                for row in batch.merged[index]:
                    assert expected is not None
                    expected = combine_attributes(expected, items[row].attributes[0])
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


# --- operations: two rows of one user never lose an increment or an add ---------------------------

_OPERATIONS = st.one_of(
    st.integers(-5, 5).map(lambda n: {"inc": n}),
    st.lists(st.sampled_from("abcd"), min_size=1, max_size=3).map(lambda v: {"add": v}),
    st.lists(st.sampled_from("abcd"), min_size=1, max_size=3).map(lambda v: {"remove": v}),
    st.just({"add": ["a"], "remove": ["b"]}),
    st.integers(0, 9),  # a plain set
    st.just({"nested": {"deep": 1}}),  # a nested object (merged or replaced)
)


_GROUPS = st.lists(
    st.builds(
        lambda gid, state: {"subscription_group_id": gid, "subscription_state": state},
        st.sampled_from([c * 8 + "-0000-4000-8000-000000000000" for c in "abc"]),
        st.sampled_from(("subscribed", "unsubscribed")),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda group: group["subscription_group_id"],
)


@st.composite
def operation_items(draw: st.DrawFn) -> list[Item]:
    """Few users, each row one attributes object of operations and sets on a few attributes."""
    out = []
    for line in range(2, draw(st.integers(1, 40)) + 2):
        user = str(draw(st.integers(0, 3)))
        objects = []
        for _ in range(draw(st.sampled_from((1, 1, 1, 2)))):  # 2: a JSONL fragment's objects
            obj: dict[str, Any] = {"external_id": user}
            for name in draw(st.lists(st.sampled_from(("points", "tags", "prefs")), max_size=3)):
                obj[name] = draw(_OPERATIONS)
            if draw(st.booleans()):
                obj["subscription_groups"] = draw(_GROUPS)
            if draw(st.booleans()):
                obj["_merge_objects"] = True
            if draw(st.integers(0, 4)) == 0:
                obj["_update_existing_only"] = draw(st.booleans())
            objects.append(obj)
        item = Item(RowRef("f.csv", line), {}, f"external_id:{user}", attributes=tuple(objects))
        out.append(item)
    return out


def _profiles(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the objects, applied in order, make of each user's profile (as the sandbox does)."""
    profiles: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj.get("_update_existing_only") is True and obj["external_id"] not in profiles:
            continue  # update-only mode creates nobody
        profile = profiles.setdefault(obj["external_id"], {})
        merge = obj.get("_merge_objects") is True
        for name, value in obj.items():
            if name not in ("external_id", "_merge_objects", "_update_existing_only"):
                apply_attribute(profile, name, value, merge)
    return profiles


@settings(max_examples=300, deadline=None)
@given(operation_items(), limit_sets)
def test_packed_operations_change_profiles_exactly_as_the_rows_in_order(
    rows: list[Item], limits: BatchLimits
) -> None:
    """Increments add up, add/remove keep row order, nothing is lost: the requests in order
    (and their split halves) build the same profiles as every row's own object in order."""
    wanted = _profiles([obj for row in rows for obj in row.attributes])
    batches = [b for b in pack(rows, limits) if isinstance(b, Batch)]
    sent = [obj for b in batches for obj in orjson.loads(b.body)["attributes"]]
    assert _profiles(sent) == wanted
    halves = [half for b in batches for half in (split(b) if b.rows > 1 else (b,))]
    sent = [obj for b in halves for obj in orjson.loads(b.body)["attributes"]]
    assert _profiles(sent) == wanted
    for batch in (*batches, *halves):
        # A user's objects in one request come from one row: one object, or a fragment's own.
        owners: dict[str, set[int]] = {}
        objects = orjson.loads(batch.body)["attributes"]
        for obj, row in zip(objects, batch.owners["attributes"], strict=True):
            owners.setdefault(obj["external_id"], set()).add(row)
        assert all(len(rows) == 1 for rows in owners.values()), owners


def test_two_increments_of_one_user_add_up_and_an_add_after_a_remove_waits() -> None:
    def row(line: int, **values: Any) -> Item:
        obj = {"external_id": "a", **values}
        return Item(RowRef("f", line), {}, "external_id:a", attributes=(obj,))

    rows = [row(2, points={"inc": 2}), row(3, points={"inc": -5}, tags={"remove": ["x"]})]
    rows.append(row(4, tags={"add": ["x"]}))
    first, second = pack(rows, BatchLimits(total=75, per_array=75))
    assert isinstance(first, Batch) and isinstance(second, Batch)
    assert orjson.loads(first.body)["attributes"] == [
        {"external_id": "a", "points": {"inc": -3}, "tags": {"remove": ["x"]}}
    ]
    assert orjson.loads(second.body)["attributes"] == [{"external_id": "a", "tags": {"add": ["x"]}}]
    assert first.attribute_users == second.attribute_users == {"external_id:a"}


def test_a_half_whose_rows_no_longer_combine_is_cut_there() -> None:
    """The whole request's fold carried r1's _merge_objects to r3's nested object; the half
    [r2, r3] cannot fold r3 into r2 (flag differs, r3 nested), so split cuts it: three
    requests, each with one object for the user, building the same profile in order."""

    def row(line: int, **values: Any) -> Item:
        obj = {"external_id": "a", **values}
        return Item(RowRef("f", line), {}, "external_id:a", attributes=(obj,))

    rows = [
        row(2, _merge_objects=True, x=1),
        row(3, y=2),
        row(4, _merge_objects=True, prefs={"k": 1}),
    ]
    (whole,) = pack(rows, BatchLimits(total=75, per_array=75))
    assert isinstance(whole, Batch) and len(orjson.loads(whole.body)["attributes"]) == 1
    parts = split(whole)
    assert [p.label for p in parts] == [f"{whole.number}.{n}" for n in (1, 2, 3)]
    sent = [obj for p in parts for obj in orjson.loads(p.body)["attributes"]]
    assert len(sent) == 3
    assert _profiles(sent) == _profiles([r.attributes[0] for r in rows])


def test_every_user_a_fragment_names_is_claimed_and_kept_apart_from_its_later_rows() -> None:
    """A JSONL row whose attributes name two users claims both for per-user order, and a
    later row of the second user goes in the next request, not beside it (review of the
    fourteenth session, P2: it could overtake the earlier request and be applied first)."""
    fragment = Item(
        RowRef("f.jsonl", 1),
        {},
        "external_id:P1",
        attributes=({"external_id": "P1", "city": "a"}, {"external_id": "S1", "city": "old"}),
    )
    later = Item(
        RowRef("f.jsonl", 2),
        {},
        "external_id:S1",
        attributes=({"external_id": "S1", "city": "new"},),
    )
    first, second = pack([fragment, later], BatchLimits(total=75, per_array=75))
    assert isinstance(first, Batch) and isinstance(second, Batch)
    assert first.attribute_users == {"external_id:P1", "external_id:S1"}
    assert second.attribute_users == {"external_id:S1"}
    again = pack([later, fragment], BatchLimits(total=75, per_array=75))  # the other way round
    assert [len(b.refs) for b in again if isinstance(b, Batch)] == [1, 1]


@st.composite
def mapped_items(draw: st.DrawFn) -> list[Item]:
    """Rows as a mapping makes them, mostly: one attributes object, events and a purchase or
    none (a wide mapping's several events); now and then another shape, a repeated user or an
    object too big to share."""
    out = []
    for line in range(2, draw(st.integers(0, 90)) + 2):
        user = str(draw(st.integers(0, 40)))
        shapes = [(1, 1, 0), (1, 1, 1), (1, 0, 0), (1, 0, 1), (0, 1, 0), (1, 3, 0), (1, 2, 2)]
        shape = draw(st.sampled_from(shapes))
        if draw(st.integers(0, 9)) == 0:
            shape = (draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pad = draw(st.sampled_from([0, 40, 400, 1_500]))
        objects = {
            a: tuple(_obj(user, line * 10 + i, pad) for i in range(n))
            for a, n in zip(ARRAYS, shape, strict=True)
        }
        out.append(Item(RowRef("f.csv", line), {}, f"external_id:{user}", **objects))
    return out


def _packed(rows: list[Item], limits: BatchLimits) -> list[tuple[Any, ...]]:
    return [
        (out.ref.line, out.message)
        if isinstance(out, RowFailure)
        else (out.number, out.body, out.refs, out.owners, out.merged, out.own_attributes)
        for out in pack(rows, limits)
    ]


@settings(max_examples=150, deadline=None)
@given(mapped_items(), limit_sets)
def test_the_usual_rows_pack_in_one_step_as_every_other_row_packs(
    rows: list[Item], limits: BatchLimits
) -> None:
    """``_added`` (one attributes object, an event and a purchase at most, a user new to the
    request) gives the requests the general path gives, from dicts and from worker bytes."""
    from importer.send import packer

    fast = _packed(rows, limits)
    assert _packed([serialised(item) for item in rows], limits) == fast
    added = packer._added
    packer._added = lambda *_: False  # type: ignore[assignment]  # the general path alone
    try:
        assert _packed(rows, limits) == fast
    finally:
        packer._added = added
