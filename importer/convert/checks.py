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

from importer.convert.codegen import GeneratedSource
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


PASSED_KEPT = 4096  # values remembered per check; a unique column (emails) stops at this


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
    fields = tuple(properties)
    full = checker_for(array, "properties")
    assert full is not None  # events and purchases have one
    if not fields:
        return None
    nested = any(
        values.kind in _NESTED_KINDS or any(type(v) in (list, dict) for v in values.fixed)
        for values in fields
    )
    names_ok = full("properties", dict.fromkeys(values.key for values in fields)) is None
    if nested or not names_ok:
        return _field_check("properties", NEVER, full)
    long_text = any(
        values.kind == "string"
        or any(type(v) is str and len(v) > MAX_STRING_CHARS for v in values.fixed)
        for values in fields
    )
    if not long_text:
        return None
    return _field_check("properties", NEVER, _short_texts_or(full))


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
_OPERATION_KEYS = frozenset({"add", "remove"})


def compiled(checks: Checks) -> ObjectCheck:
    """``first_violation(obj, checks)`` as one generated function: the loop unrolled, each
    check's fast paths inline (no tuple unpacked, no length test a check cannot pass). This
    runs for every object of every row: ~1.5 µs a CRM row in the loop.

    Made as importer.convert.codegen makes a mapping's code: nothing from the mapping enters
    the source; keys, bounds, checkers and remembered values are closure variables ``c<n>``."""
    source = GeneratedSource(None)  # its first line: ``get = record.get``
    value = source.value
    lines: list[str] = []
    for key, shortest, longest, check, passed, items in checks:
        k, c, p = value(key), value(check), value(passed)
        remember = [
            f"violation = {c}({k}, value)",
            "if violation is not None:",
            "    return violation",
            f"if len({p}) < {PASSED_KEPT}:",
            f"    {p}.add(value)",
        ]
        known = f"value not in {p}"
        if shortest <= longest:
            known = f"not {int(shortest)} <= len(value) <= {int(longest)} and {known}"
        lines += [f"value = get({k}, OMIT)", "if value is not OMIT:"]
        lines += ["    if value.__class__ is str:", f"        if {known}:"]
        lines += [f"            {line}" for line in remember]
        lines += ["    elif value.__class__ is int:", f"        if value not in {p}:"]
        lines += [f"            {line}" for line in remember]
        if items:  # the check refuses such a list only for a text item over ``longest``
            lines += [
                "    elif value.__class__ is list:",
                "        for item in value:",
                f"            if item.__class__ is str and len(item) > {int(longest)}:",
                f"                violation = {c}({k}, value)",
                "                if violation is not None:",
                "                    return violation",
                "                break",
                # an object is checked only if it reads as an operation (``{"inc": n}``,
                # ``{"add": [...]}``): any other is a nested attribute, which always passes
                "    elif value.__class__ is dict:",
                '        if ("inc" in value and len(value) == 1) or (',
                f"            value and value.keys() <= {value(_OPERATION_KEYS)}",
                "        ):",
                f"            violation = {c}({k}, value)",
                "            if violation is not None:",
                "                return violation",
            ]
        lines += ["    else:", f"        violation = {c}({k}, value)"]
        lines += ["        if violation is not None:", "            return violation"]
    lines.append("return None")
    for line in lines:
        source.add(1, line)
    made: ObjectCheck = source.function("check", "record")
    return made
