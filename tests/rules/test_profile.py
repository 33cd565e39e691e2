"""How an attribute changes a stored profile, and the export's time forms (importer.rules)."""

from __future__ import annotations

from typing import Any

import pytest

from importer.rules import (
    apply_attribute,
    braze_time,
    combine_attributes,
    operation_of,
    parse_instant,
)


def _applied(*updates: tuple[str, Any], merge: bool = False) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in updates:
        apply_attribute(attributes, name, value, merge)
    return attributes


def test_set_then_null_unsets() -> None:
    assert _applied(("plan", "gold"), ("plan", None)) == {}
    assert _applied(("plan", "gold"), ("plan", "silver")) == {"plan": "silver"}


def test_arrays_are_stored_as_unique_values_and_add_moves_a_value_to_the_end() -> None:
    assert _applied(("tags", ["a", "b", "a"])) == {"tags": ["a", "b"]}
    moved = _applied(("tags", ["a", "b"]), ("tags", {"add": ["a", "c"], "remove": ["b"]}))
    assert moved == {"tags": ["a", "c"]}
    assert _applied(("tags", list(range(600)))) == {"tags": list(range(100, 600))}


def test_inc_adds_to_an_integer_and_starts_from_zero() -> None:
    assert _applied(("visits", {"inc": 2}), ("visits", {"inc": 3})) == {"visits": 5}
    assert _applied(("visits", "x"), ("visits", {"inc": 1})) == {"visits": 1}


def test_nested_objects_are_replaced_unless_merged() -> None:
    first = ("car", {"make": "VW", "engine": {"hp": 90, "fuel": "diesel"}})
    update = ("car", {"engine": {"hp": 110}})
    assert _applied(first, update) == {"car": {"engine": {"hp": 110}}}
    merged = _applied(first, update, merge=True)
    assert merged == {"car": {"make": "VW", "engine": {"hp": 110, "fuel": "diesel"}}}


def test_arrays_of_objects_add_then_remove_then_update() -> None:
    pets = ("pets", [{"id": 1, "name": "Rex"}, {"id": 2, "name": "Tom"}])
    change = {
        "$add": [{"id": 3, "name": "Kit"}],
        "$remove": [{"$identifier_key": "id", "$identifier_value": 2}],
        "$update": [
            {"$identifier_key": "id", "$identifier_value": 1, "$new_object": {"name": "Max"}}
        ],
    }
    assert _applied(pets, ("pets", change)) == {
        "pets": [{"id": 1, "name": "Max"}, {"id": 3, "name": "Kit"}]
    }


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"inc": 1}, "inc"),
        ({"add": ["a"]}, "array"),
        ({"remove": ["a"]}, "array"),
        ({"$add": [{}]}, "objects"),
        ({"make": "VW"}, None),
        ({}, None),
        ([1], None),
        ("x", None),
    ],
)
def test_operation_of(value: Any, kind: str | None) -> None:
    assert operation_of(value) == kind


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00",
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00:000Z",
        "2024-05-01 10:00:00.000 UTC",
    ],
)
def test_every_time_form_reads_as_the_same_instant(text: str) -> None:
    assert parse_instant(text) == parse_instant("2024-05-01T10:00:00+00:00")


@pytest.mark.parametrize("text", ["20240501", "soon", "2024-13-01", "", None, 5])
def test_what_is_not_a_time(text: Any) -> None:
    assert parse_instant(text) is None


def test_braze_time_writes_milliseconds_and_z() -> None:
    moment = parse_instant("2024-05-01T12:00:00.123456+02:00")
    assert moment is not None
    assert braze_time(moment) == "2024-05-01T10:00:00.123Z"


@pytest.mark.parametrize("flag", ["_update_existing_only", "push_token_import"])
def test_rows_whose_whole_object_flags_differ_do_not_combine(flag: str) -> None:
    """Folded into a row that may not create the user, a row that may would be lost with it."""
    creates, only_existing = {"external_id": "a", "x": 1}, {"external_id": "a", flag: True}
    assert combine_attributes(creates, {**only_existing, "y": 2}) is None
    assert combine_attributes({**only_existing, "y": 2}, {flag: False, **creates}) is None
    both = combine_attributes({**only_existing, "x": 1}, {**only_existing, "y": 2})
    assert both == {"external_id": "a", flag: True, "x": 1, "y": 2}


def test_a_group_asked_again_with_double_opt_in_is_not_one_change() -> None:
    """Subscribed, then subscribed with double opt-in (a confirmation SMS) is not what the
    second alone would do; the same flag on both combines as before."""
    group = {"subscription_group_id": "g1", "subscription_state": "subscribed"}
    doi = {**group, "use_double_opt_in_logic": True}
    earlier = {"external_id": "a", "subscription_groups": [group]}
    assert combine_attributes(earlier, {"external_id": "a", "subscription_groups": [doi]}) is None
    later = {
        "external_id": "a",
        "subscription_groups": [{**doi, "subscription_state": "unsubscribed"}],
    }
    combined = combine_attributes({"external_id": "a", "subscription_groups": [doi]}, later)
    assert combined == later
