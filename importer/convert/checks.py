"""Braze's rules compiled per mapping: per field, only the checks its values can fail.

``importer.rules.check_object`` is the full validator (JSONL fragments, the sandbox). A mapped field
cannot produce just anything: an integer field holds a 64-bit int, a time field an ISO 8601 time
our converter wrote, a string field text; a literal is the same value on every row. So, once per
mapping, each field gets the rule ``check_object`` would apply to it (``rule_for``), and
the check is kept only if some value the field can produce may break that rule. A kept check
skips the call when the value is text of a length the rule always accepts (``Rule.text``).

The converter runs the kept checks object by object in the order the object's keys were built,
which is the order ``check_object`` walks them, so the first violation — code and message — is
the one ``check_object`` reports. Three things ``check_object`` tests never fail for a mapped
object and are not repeated: the identifier keys (the identity is always one non-empty text
value, checked per row by ``identity_check``), the required keys (an event or purchase missing
one is not built), and the names of properties (the mapping refuses empty, ``$…`` and reserved
names; a name longer than 255 characters keeps the full properties check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from importer.convert.generated import PASSED_KEPT, GeneratedSource
from importer.mapping import OMIT
from importer.models import BrazeObject
from importer.rules import (
    ATTRIBUTE_FIELDS,
    MAX_EXTERNAL_ID_BYTES,
    MAX_IMAGE_URL_CHARS,
    MAX_STRING_CHARS,
    Checker,
    Violation,
    checker_for,
)

# The shapes of value a mapped field produces: any text, a 64-bit int, a finite float, a bool,
# null, an ISO 8601 time with offset (importer.mapping.times), a YYYY-MM-DD date.
TEXT, INT, FLOAT, BOOL, NULL, TIME, DATE = "text", "int", "float", "bool", "null", "time", "date"
# The shapes of each mapping type; None: anything at all.
SHAPES: dict[str, frozenset[str] | None] = {
    "string": frozenset({TEXT}),
    "integer": frozenset({INT}),
    "float": frozenset({FLOAT}),
    "boolean": frozenset({BOOL}),
    "time": frozenset({TIME}),
    "date": frozenset({DATE}),
    "array": None,
    "json": None,
    "literal": frozenset(),  # only its one value
}
_NESTED_KINDS = ("array", "json")
NEVER = (1, 0)  # no text passes without asking the checker
ANY_LENGTH = (0, 1 << 62)
_SHORT = (1, MAX_STRING_CHARS)


class Rule(NamedTuple):
    """A field's checker, the shapes it accepts whatever the value, the text lengths it
    accepts whatever the text (``text[0]``..``text[1]`` characters), and whether it accepts
    any list whose texts are that short (``items``: a custom attribute's array)."""

    check: Checker
    accepts: frozenset[str]
    text: tuple[int, int] = NEVER
    items: bool = False  # also: any object that is not an operation (a nested attribute)


def _accepts(*shapes: str, text: tuple[int, int] = NEVER) -> tuple[frozenset[str], tuple[int, int]]:
    return frozenset(shapes), text


# Read off the checkers in importer.rules.objects, by field name (a name has the same checker in
# every array); tests/convert/test_checks.py holds each claim to its checker. A field missing here
# accepts nothing without a call, which is always safe.
_OPTIONAL_STRING = _accepts(TEXT, NULL, TIME, DATE, text=ANY_LENGTH)
_FLAG = _accepts(BOOL)
_ACCEPTS: dict[str, tuple[frozenset[str], tuple[int, int]]] = {
    "external_id": _accepts(text=(1, MAX_EXTERNAL_ID_BYTES // 4)),  # <= 4 bytes a character
    "braze_id": _accepts(text=(1, ANY_LENGTH[1])),
    "email": _accepts(NULL),
    "phone": _accepts(NULL),
    "image_url": _accepts(NULL, TIME, DATE, text=(0, MAX_IMAGE_URL_CHARS)),
    "gender": _accepts(NULL),
    "dob": _accepts(NULL, DATE),
    "country": _accepts(NULL),
    "current_location": _accepts(NULL),
    "facebook": _accepts(TEXT, INT, FLOAT, BOOL, NULL, TIME, DATE, text=ANY_LENGTH),
    "twitter": _accepts(TEXT, INT, FLOAT, BOOL, NULL, TIME, DATE, text=ANY_LENGTH),
    "name": _accepts(TIME, DATE, text=_SHORT),
    "product_id": _accepts(TIME, DATE, text=_SHORT),
    "time": _accepts(TIME, DATE),
    "price": _accepts(INT, FLOAT),
    **dict.fromkeys(("_update_existing_only", "push_token_import", "_merge_objects"), _FLAG),
    **dict.fromkeys(("email_open_tracking_disabled", "email_click_tracking_disabled"), _FLAG),
    **dict.fromkeys(("app_id", "first_name", "last_name", "home_city"), _OPTIONAL_STRING),
    **dict.fromkeys(("language", "time_zone", "marked_email_as_spam_at"), _OPTIONAL_STRING),
    **dict.fromkeys(("date_of_first_session", "date_of_last_session"), _OPTIONAL_STRING),
}
_CUSTOM = _accepts(INT, FLOAT, BOOL, NULL, TIME, DATE, text=(0, MAX_STRING_CHARS))


def rule_for(array: str, field: str) -> Rule | None:
    """The rule ``check_object`` applies to ``field`` of an ``array`` object; None if none."""
    check = checker_for(array, field)
    if check is None:
        return None
    if array == "attributes" and field not in ATTRIBUTE_FIELDS:  # a custom attribute
        return Rule(check, *_CUSTOM, items=True) if field else Rule(check, frozenset())
    return Rule(check, *_ACCEPTS.get(field, (frozenset(), NEVER)))


class FieldValues(NamedTuple):
    """What one mapped field can put under ``key``: values of ``kind`` (see SHAPES), and
    ``fixed`` values besides (a literal, a default, or None for ``empty = "null"``)."""

    key: str
    kind: str
    fixed: tuple[Any, ...] = ()


class FieldCheck(NamedTuple):
    """A check kept for ``key``: text of ``shortest``..``longest`` characters passes without
    calling ``check``, and so does a text or int value ``check`` already passed (``passed``,
    up to ``PASSED_KEPT`` of them: exports repeat genders, currencies and quantities on every
    row, and a check depends on the key and value only)."""

    key: str
    shortest: int
    longest: int
    check: Checker
    passed: set[Any]
    items: bool = False  # a list whose texts are at most ``longest`` long passes (Rule.items)


def _field_check(
    key: str, text: tuple[int, int], check: Checker, items: bool = False
) -> FieldCheck:
    return FieldCheck(key, text[0], text[1], check, set(), items)


Checks = tuple[FieldCheck, ...]


def field_check(array: str, values: FieldValues) -> FieldCheck | None:
    """The check ``values`` need as a field of an ``array`` object; None if none can fail."""
    rule = rule_for(array, values.key)
    if rule is None or _always_accepted(rule, values):
        return None
    return _field_check(values.key, rule.text, rule.check, rule.items)


def _always_accepted(rule: Rule, values: FieldValues) -> bool:
    if any(rule.check(values.key, value) is not None for value in values.fixed):
        return False
    shapes = SHAPES.get(values.kind)
    if shapes is None:
        return False
    return shapes <= rule.accepts


def object_checks(array: str, fields: Iterable[FieldValues]) -> Checks:
    """The kept checks of one object's fields, in the order they are given (the build order)."""
    return tuple(check for values in fields if (check := field_check(array, values)) is not None)


def properties_check(array: str, properties: Iterable[FieldValues]) -> FieldCheck | None:
    """The check of the ``properties`` object built from these fields, if it can fail.

    Properties of scalar kinds with well-formed names can fail only one way: a text value over
    255 characters. That is tested inline; only then does the full checker run (and report it).
    """
    full = checker_for(array, "properties")
    assert full is not None  # events and purchases have one
    way = _failing(full, tuple(properties))
    if way is None:
        return None
    return _field_check("properties", NEVER, full if way == "any" else _short_texts_or(full))


def _failing(full: Checker, fields: tuple[FieldValues, ...]) -> str | None:
    """How a properties object of these fields can fail: in any way (nested values, bad names),
    only by a text over 255 characters ("long"), or not at all (None)."""
    if not fields:
        return None
    nested = any(
        values.kind in _NESTED_KINDS or any(type(v) in (list, dict) for v in values.fixed)
        for values in fields
    )
    names_ok = full("properties", dict.fromkeys(values.key for values in fields)) is None
    if nested or not names_ok:
        return "any"
    long_text = any(
        values.kind == "string"
        or any(type(v) is str and len(v) > MAX_STRING_CHARS for v in values.fixed)
        for values in fields
    )
    return "long" if long_text else None


def property_guards(
    array: str, properties: Iterable[FieldValues], fused: Iterable[bool]
) -> tuple[FieldCheck | None, ...] | None:
    """Instead of ``properties_check``, a check of each property's value where the code sets it
    (``fused``: the fields whose values the code sets from a cell): possible when the object
    can fail only by a text over 255 characters, each text field is fused and no literal holds
    such a text. None when the object keeps ``properties_check``."""
    full = checker_for(array, "properties")
    assert full is not None  # events and purchases have one
    fields, marks = tuple(properties), tuple(fused)
    way = _failing(full, fields)
    if way == "any":
        return None
    pairs = tuple(zip(fields, marks, strict=True))
    if any(values.kind == "string" and not mark for values, mark in pairs) or any(
        type(v) is str and len(v) > MAX_STRING_CHARS for values in fields for v in values.fixed
    ):
        return None
    return tuple(
        _field_check(values.key, (0, MAX_STRING_CHARS), _long_text)
        if way == "long" and values.kind == "string"
        else None
        for values, _mark in pairs
    )


_LONG = Violation("string_too_long", "a property's text exceeds 255 chars")


def _long_text(field: str, value: Any) -> Violation | None:
    """Whether a property's value breaks the one rule a fused property can: then the object's
    full check runs on the general path, and reports it as it always has."""
    return _LONG if value.__class__ is str and len(value) > MAX_STRING_CHARS else None


def _short_texts_or(full: Checker) -> Checker:
    def check(field: str, value: Any) -> Violation | None:
        for item in value.values():
            if item.__class__ is str and len(item) > MAX_STRING_CHARS:
                return full(field, value)
        return None

    return check


def identity_check(key: str) -> FieldCheck:
    """The per-row check of the identifier (or, for ``user_alias``, the alias object)."""
    rule = rule_for("attributes", key)
    assert rule is not None  # every identifier key has a rule
    return _field_check(key, rule.text, rule.check)


def first_violation(obj: BrazeObject, checks: Checks) -> Violation | None:
    """The first kept check ``obj`` fails, in order; None when it passes them all."""
    for key, shortest, longest, check, passed, _items in checks:
        value = obj.get(key, OMIT)
        if value is OMIT:
            continue
        kind = value.__class__
        if kind is str:
            if shortest <= len(value) <= longest or value in passed:
                continue
        elif kind is int and value in passed:  # not a bool: True == 1 would share its entry
            continue
        violation = check(key, value)
        if violation is not None:
            return violation
        if (kind is str or kind is int) and len(passed) < PASSED_KEPT:
            passed.add(value)
    return None


ObjectCheck = Callable[[BrazeObject], Violation | None]


def compiled(checks: Checks) -> ObjectCheck:
    """``first_violation(obj, checks)`` as one generated function: the loop unrolled, each
    check's fast paths inline (no tuple unpacked, no length test a check cannot pass). This
    runs for every object of every row: ~1.5 µs a CRM row in the loop.

    Made as importer.convert.codegen makes a mapping's code: nothing from the mapping enters
    the source; keys, bounds, checkers and remembered values are closure variables ``c<n>``.
    The lines of each check are codegen's, which also fuses them into a mapping's code."""
    source = GeneratedSource(None)  # its first line: ``get = record.get``
    for check in checks:
        source.add(1, f"value = get({source.value(check.key)}, OMIT)")
        source.add(1, "if value is not OMIT:")
        source.check(2, "value", check, "return violation")
    source.add(1, "return None")
    made: ObjectCheck = source.function("check", "record")
    return made
