"""One user judged: what the run delivered against what the export returned."""

from __future__ import annotations

import time
from typing import Any

import pytest

from importer.rules import braze_time
from importer.verify.compare import Comparer, same
from importer.verify.expected import Expected

NOW = time.time()
DAY = 86_400.0


@pytest.mark.parametrize(
    ("expected", "found"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.123456Z", "2024-05-01 10:00:00.123 UTC"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
        (50.0, 50),
        (["a", "b", "a"], ["b", "a"]),
        ({"car": {"hp": 90.0}}, {"car": {"hp": 90}}),
        (None, None),
        ("", ""),
    ],
)
def test_what_counts_as_the_same(expected: Any, found: Any) -> None:
    assert same(expected, found)


@pytest.mark.parametrize(
    ("expected", "found"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00.000Z"),
        (1, True),
        (True, 1),
        ("1", 1),
        (["a", "b"], ["a"]),
        (["a"], ["a", "b"]),
        (None, ""),
        ("gold", None),
        ({"a": 1}, {"a": 1, "b": 2}),
    ],
)
def test_what_does_not(expected: Any, found: Any) -> None:
    assert not same(expected, found)


def _user(**kw: Any) -> Expected:
    return Expected("external_id:u1", **kw)


def test_attributes_standard_and_custom_and_the_reasons() -> None:
    comparer = Comparer(None, NOW, NOW)
    expected = _user(
        attributes={"first_name": "Ann", "plan": "gold", "city_code": None, "vip": True},
    )
    found = {"first_name": "Ann", "custom_attributes": {"city_code": "X", "vip": False}}
    lines = {(m.field, m.reason) for m in comparer.compare(expected, found)}
    assert lines == {("plan", "missing"), ("city_code", "should be unset"), ("vip", "different")}
    assert comparer.tally.fields_compared == 4


def test_fields_the_export_does_not_return_are_skipped_and_counted() -> None:
    comparer = Comparer(None, NOW, NOW)
    groups = [{"subscription_group_id": "g", "subscription_state": "subscribed"}]
    expected = _user(attributes={"subscription_groups": groups, "image_url": "http://x"})
    assert comparer.compare(expected, {"external_id": "u1"}) == []
    assert comparer.tally.skipped == {"not_exported": 2}


def test_operations_are_checked_for_presence_and_type_only() -> None:
    comparer = Comparer(None, NOW, NOW)
    expected = _user(operations={"visits": "inc", "tags": "array", "pets": "objects"})
    found = {"custom_attributes": {"visits": 12, "pets": {"not": "a list"}}}
    lines = comparer.compare(expected, found)
    assert [(m.field, m.reason) for m in lines] == [("pets", "wrong type")]
    assert comparer.tally.operations_checked == 3 and comparer.tally.fields_compared == 0


def _event(count: int, first: float, last: float) -> dict[str, Any]:
    return {"name": "visit", "count": count, "first": braze_time(first), "last": braze_time(last)}


def test_events_at_least_the_count_and_not_before_the_latest_time() -> None:
    comparer = Comparer(None, NOW, NOW)
    expected = _user(events={"visit": [3, NOW - 2 * DAY, NOW - DAY]})
    for found, reason in (
        (_event(5, NOW - 9 * DAY, NOW - DAY), None),  # older and more events: fine
        (_event(2, NOW - 2 * DAY, NOW - DAY), "count below delivered"),
        (_event(3, NOW - 2 * DAY, NOW - 3 * DAY), "last time earlier"),
    ):
        lines = comparer.compare(expected, {"custom_events": [found]})
        assert [m.reason for m in lines] == ([reason] if reason else [])
    assert [m.reason for m in comparer.compare(expected, {})] == ["missing"]


def test_events_outside_the_export_window_are_not_checkable() -> None:
    comparer = Comparer(None, NOW, NOW)
    expected = _user(
        events={"old": [1, NOW - 400 * DAY, NOW - 400 * DAY]},
        purchases={"sku": [4, NOW - 200 * DAY, NOW - DAY]},  # the count spans the window edge
    )
    found = {"purchases": [{"name": "sku", "count": 1, "last": braze_time(NOW - DAY)}]}
    assert comparer.compare(expected, found) == []
    assert comparer.tally.skipped == {
        "outside_export_window": 1,
        "count_outside_export_window": 1,
    }


def test_a_future_time_is_expected_as_its_arrival() -> None:
    comparer = Comparer(None, NOW, ingested_by=NOW - 60)
    expected = _user(events={"visit": [1, NOW + 30 * DAY, NOW + 30 * DAY]})
    assert comparer.compare(expected, {"custom_events": [_event(1, NOW - 60, NOW - 60)]}) == []


def test_fields_limits_what_is_compared_and_a_missing_user_is_one_line() -> None:
    comparer = Comparer(["plan"], NOW, NOW)
    expected = _user(attributes={"plan": "gold", "city": "Rome"}, events={"v": [1, NOW, NOW]})
    assert [m.field for m in comparer.compare(expected, {})] == ["plan"]
    [line] = comparer.compare(expected, None)
    assert line.as_line() == {
        "user": "external_id:u1",
        "field": "(profile)",
        "expected": "a profile",
        "found": None,
        "reason": "missing",
    }
