"""One user: what the profile should hold (``Expected``) against what the export returned.

docs/braze.md, Exporting profiles: attributes value by value — times as instants (the export
writes them in its own forms), numbers by value, arrays as the unique values Braze stores, in
any order; ``null`` means absent. A value changed by an operation (``inc``, ``add``...) is
checked for presence and type only. Events and purchases: the profile's count is at least what
this run delivered and its last time is not earlier than this run's latest (a future time was
stored as the time it arrived), within the export's window of ``EVENT_WINDOW_DAYS`` days;
older ones, and standard fields the export does not return, are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from importer.rules import (
    ATTRIBUTE_FIELDS,
    EVENT_WINDOW_DAYS,
    EXPORTED_STANDARD,
    braze_time,
    parse_instant,
)
from importer.verify.expected import Expected

_TIME_TOLERANCE_S = 0.001  # the export keeps milliseconds
_WINDOW_MARGIN_DAYS = 1  # an event this close to the window's edge may just have left it


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One line of verify.jsonl."""

    user: str
    field: str
    expected: Any
    found: Any
    reason: str

    def as_line(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "field": self.field,
            "expected": self.expected,
            "found": self.found,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Tally:
    """Counters over every user compared."""

    fields_compared: int = 0
    operations_checked: int = 0  # attributes changed by operations: presence and type only
    skipped: dict[str, int] = field(default_factory=dict)  # why -> fields not compared

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _is_number(value: Any) -> TypeGuard[int | float]:
    return type(value) in (int, float)


def same(expected: Any, found: Any) -> bool:
    """Does the stored ``found`` hold the delivered ``expected``?"""
    if expected is None or found is None:
        return expected is found
    if type(expected) is bool or type(found) is bool:
        return expected is found
    if _is_number(expected) and _is_number(found):
        return bool(expected == found)
    if type(expected) is str and type(found) is str:
        if expected == found:
            return True
        a, b = parse_instant(expected), parse_instant(found)
        return a is not None and b is not None and abs(a - b) < _TIME_TOLERANCE_S
    if type(expected) is list and type(found) is list:
        return _same_values(expected, found)
    if type(expected) is dict and type(found) is dict:
        return expected.keys() == found.keys() and all(
            same(value, found[key]) for key, value in expected.items()
        )
    return False


def _same_values(expected: list[Any], found: list[Any]) -> bool:
    wanted: list[Any] = []
    for value in expected:
        if not any(same(value, kept) for kept in wanted):
            wanted.append(value)
    return len(wanted) == len(found) and all(
        any(same(value, stored) for stored in found) for value in wanted
    )


def _fits(kind: str, found: Any) -> bool:
    if kind == "inc":
        return type(found) is int
    return type(found) is list


class Comparer:
    """Compares users; ``now`` and ``ingested_by`` are epoch seconds (``ingested_by``: when the
    run's last request was answered — a future event time was stored as its arrival)."""

    def __init__(self, fields: Collection[str] | None, now: float, ingested_by: float) -> None:
        self._fields = frozenset(fields) if fields is not None else None
        self._window_start = now - (EVENT_WINDOW_DAYS - _WINDOW_MARGIN_DAYS) * 86_400
        self._ingested_by = ingested_by
        self.tally = Tally()

    def _wanted(self, name: str) -> bool:
        return self._fields is None or name in self._fields

    def compare(self, expected: Expected, found: dict[str, Any] | None) -> list[Mismatch]:
        if found is None:
            return [Mismatch(expected.user, "(profile)", "a profile", None, "missing")]
        mismatches = self._attributes(expected, found)
        mismatches += self._operations(expected, found)
        for table, name, label in (
            (expected.events, "custom_events", "event"),
            (expected.purchases, "purchases", "purchase"),
        ):
            if table and self._wanted(name):
                mismatches += self._counted(expected.user, table, found.get(name), label)
        return mismatches

    def _checkable(self, names: Iterable[str], found: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """(name, stored value or None) for each wanted name the export returns; the others
        are counted as skipped."""
        custom = found.get("custom_attributes")
        custom = custom if type(custom) is dict else {}
        for name in names:
            if not self._wanted(name):
                continue
            if name not in ATTRIBUTE_FIELDS:
                yield name, custom.get(name)
            elif name in EXPORTED_STANDARD:
                yield name, found.get(name)
            else:
                self.tally.skip("not_exported")

    def _attributes(self, expected: Expected, found: dict[str, Any]) -> list[Mismatch]:
        mismatches = []
        values = expected.attributes
        for name, stored in self._checkable(values, found):
            value = values[name]
            self.tally.fields_compared += 1
            if same(value, stored):
                continue
            if value is None:
                reason = "should be unset"
            elif stored is None:
                reason = "missing"
            else:
                reason = "different"
            mismatches.append(Mismatch(expected.user, name, value, stored, reason))
        return mismatches

    def _operations(self, expected: Expected, found: dict[str, Any]) -> list[Mismatch]:
        mismatches = []
        for name, stored in self._checkable(expected.operations, found):
            kind = expected.operations[name]
            self.tally.operations_checked += 1
            if stored is None and kind == "array":
                continue  # every value may have been removed
            if not _fits(kind, stored):
                want = "an integer" if kind == "inc" else "an array"
                reason = "missing" if stored is None else "wrong type"
                mismatches.append(Mismatch(expected.user, name, want, stored, reason))
        return mismatches

    def _counted(
        self, user: str, table: dict[str, list[float]], exported: Any, label: str
    ) -> list[Mismatch]:
        entries = {
            e.get("name"): e
            for e in (exported if type(exported) is list else ())
            if type(e) is dict
        }
        mismatches = []
        for name, (count, first, last) in table.items():
            if last < self._window_start:
                self.tally.skip("outside_export_window")
                continue
            self.tally.fields_compared += 1
            field_name = f"{label}:{name}"
            want = {"count": int(count), "last": braze_time(last)}
            entry = entries.get(name)
            if entry is None:
                mismatches.append(Mismatch(user, field_name, want, None, "missing"))
                continue
            stored_count = entry.get("count")
            stored_last = parse_instant(entry.get("last"))
            if first < self._window_start:
                self.tally.skip("count_outside_export_window")
            elif not _is_number(stored_count) or stored_count < count:
                mismatches.append(Mismatch(user, field_name, want, entry, "count below delivered"))
                continue
            latest = min(last, self._ingested_by) - _TIME_TOLERANCE_S
            if stored_last is None or stored_last < latest:
                mismatches.append(Mismatch(user, field_name, want, entry, "last time earlier"))
        return mismatches
