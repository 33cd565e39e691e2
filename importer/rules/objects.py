"""Braze's per-object rules (docs/braze.md, Event and purchase rules), checked before sending:
the rules of events and purchases here, those of identifiers in ``importer.rules.identifiers``
and of standard attributes in ``importer.rules.user_fields``.

Used by the converter (failures at stage ``validate``) and by the sandbox (``errors[]``). For
mapped rows the converter runs only the checkers a field's values can fail
(``importer.convert.checks``, via ``checker_for``); ``check_object`` stays the full validator
(JSONL fragments, the sandbox).

Hot path: every check is a small function looked up in a dict by field name, patterns are
compiled once at import, and the first broken rule wins.
Deliberately stricter than Braze in one place: an over-long custom string attribute is refused
here (``string_too_long``) instead of being dropped silently as Braze does.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

from importer.models import BrazeObject
from importer.rules.identifiers import check_identifiers
from importer.rules.user_fields import (
    ATTRIBUTE_FIELDS,
    COMMON_FIELDS,
    CURRENCIES,
    MAX_EVENT_PROPERTIES_BYTES,
    MAX_PURCHASE_PROPERTIES_BYTES,
    MAX_QUANTITY,
    MAX_STRING_CHARS,
    RESERVED_EVENT_PROPERTIES,
    RESERVED_PURCHASE_PROPERTIES,
)
from importer.rules.violation import Checker, Violation, is_number, short

# --- events and purchases ----------------------------------------------------------------------


def _time(field: str, value: Any) -> Violation | None:
    if type(value) is str:
        try:
            datetime.fromisoformat(value)
            return None
        except ValueError:
            # Braze also takes yyyy-MM-dd'T'HH:mm:ss:SSSZ: a colon before the milliseconds.
            if len(value) > 20 and value[19] == ":":
                try:
                    datetime.fromisoformat(f"{value[:19]}.{value[20:]}")
                    return None
                except ValueError:
                    pass
    return Violation("invalid_time", f"{field} must be an ISO 8601 time: {short(value)}")


def _bounded_string(code: str) -> Checker:
    def check(field: str, value: Any) -> Violation | None:
        if type(value) is not str or not value or len(value) > MAX_STRING_CHARS:
            return Violation(code, f"{field} must be a non-empty string of at most 255 chars")
        return None

    return check


def _currency(field: str, value: Any) -> Violation | None:
    if type(value) is not str or value not in CURRENCIES:
        return Violation("invalid_currency", f"{field} must be an ISO 4217 code: {short(value)}")
    return None


def _price(field: str, value: Any) -> Violation | None:
    if not is_number(value):
        return Violation("invalid_price", f"{field} must be a number")
    return None


def _quantity(field: str, value: Any) -> Violation | None:
    if type(value) is not int or not 1 <= value <= MAX_QUANTITY:
        return Violation("invalid_quantity", f"{field} must be an integer 1..{MAX_QUANTITY}")
    return None


def _properties(reserved: frozenset[str], max_bytes: int) -> Checker:
    def check(field: str, value: Any) -> Violation | None:
        if type(value) is not dict:
            return Violation("invalid_properties", f"{field} must be an object")
        nested = False
        for key, item in value.items():
            if type(key) is not str or not key or len(key) > MAX_STRING_CHARS or key[0] == "$":
                return Violation(
                    "invalid_property_key",
                    f"{field}: key {short(key)} must be 1-255 chars without a leading $",
                )
            if key in reserved:
                return Violation("reserved_property", f"{field}.{key} is a reserved name")
            kind = type(item)
            if kind is str:
                if len(item) > MAX_STRING_CHARS:
                    return Violation("string_too_long", f"{field}.{key} exceeds 255 chars")
            elif kind is list or kind is dict:
                nested = True
        if nested:  # the size cap applies only when some value is an array or object
            try:
                size = len(orjson.dumps(value))
            except TypeError:  # orjson.JSONEncodeError: not JSON at all
                return Violation("invalid_properties", f"{field} is not JSON-serialisable")
            if size > max_bytes:
                return Violation(
                    "properties_too_large", f"{field} is {size} bytes, over {max_bytes}"
                )
        return None

    return check


EVENT_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "name": _bounded_string("invalid_event_name"),
    "time": _time,
    "properties": _properties(RESERVED_EVENT_PROPERTIES, MAX_EVENT_PROPERTIES_BYTES),
}

PURCHASE_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "product_id": _bounded_string("invalid_product_id"),
    "currency": _currency,
    "price": _price,
    "quantity": _quantity,
    "time": _time,
    "properties": _properties(RESERVED_PURCHASE_PROPERTIES, MAX_PURCHASE_PROPERTIES_BYTES),
}

_FIELDS: dict[str, dict[str, Checker]] = {
    "attributes": ATTRIBUTE_FIELDS,
    "events": EVENT_FIELDS,
    "purchases": PURCHASE_FIELDS,
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "attributes": (),
    "events": ("name", "time"),
    "purchases": ("product_id", "currency", "price", "time"),
}
_SCALARS = (int, float, bool, type(None))
_PLAIN = frozenset((str, *_SCALARS))


# --- custom attributes -------------------------------------------------------------------------


def _custom_attribute(field: Any, value: Any) -> Violation | None:
    if type(field) is not str or not field:
        return Violation("invalid_attribute_name", f"attribute name {short(field)} is empty")
    kind = type(value)
    if kind is str:
        if len(value) > MAX_STRING_CHARS:
            return Violation("string_too_long", f"{field} exceeds 255 chars ({len(value)})")
    elif kind is list:
        for item in value:
            if type(item) is str and len(item) > MAX_STRING_CHARS:
                return Violation("string_too_long", f"{field}: an array item exceeds 255 chars")
    elif kind is dict:
        return _operation(field, value)
    elif kind not in _SCALARS:
        return Violation("invalid_type", f"{field} has a non-JSON value of type {kind.__name__}")
    return None


_ARRAY_OPERATIONS = frozenset({"add", "remove"})
_ARRAY_ITEMS = (str, int, float, bool)


def _operation(field: str, value: dict[Any, Any]) -> Violation | None:
    """``{"inc": n}`` and ``{"add": [...], "remove": [...]}`` (docs/braze.md, Operations on
    attributes); any other object is a nested attribute, not checked here."""
    if "inc" in value and len(value) == 1:
        inc = value["inc"]
        if type(inc) is not int:
            return Violation("invalid_increment", f"{field}.inc must be an integer: {short(inc)}")
        return None
    if not value or not value.keys() <= _ARRAY_OPERATIONS:
        return None
    for op, items in value.items():
        if type(items) is not list:
            return Violation("invalid_array_operation", f"{field}.{op} must be an array")
        for item in items:
            kind = type(item)
            if kind not in _ARRAY_ITEMS or (kind is float and not math.isfinite(item)):
                return Violation(
                    "invalid_array_operation",
                    f"{field}.{op}: items must be strings, numbers or booleans, not {short(item)}",
                )
            if kind is str and len(item) > MAX_STRING_CHARS:
                return Violation("string_too_long", f"{field}.{op}: an item exceeds 255 chars")
    return None


# --- the checker of one field (for importer.convert.checks) ------------------------------------


def checker_for(array: str, field: str) -> Checker | None:
    """The checker ``check_object`` applies to ``field`` of an object in ``array`` (an unknown
    key of an attributes object is a custom attribute); None when it applies none: Braze
    ignores unknown keys of events and purchases."""
    checker = _FIELDS[array].get(field)
    if checker is None and array == "attributes":
        return _custom_attribute
    return checker


# --- entry point -------------------------------------------------------------------------------


def check_object(array: str, obj: BrazeObject) -> Violation | None:
    """Return the first rule ``obj`` breaks as an element of ``array``, or None if valid."""
    checkers = _FIELDS.get(array)
    if checkers is None:
        return Violation("unknown_array", f"unknown array {short(array)}")
    if type(obj) is not dict:
        return Violation("invalid_object", f"each entry of {array} must be an object")
    violation = check_identifiers(array, obj)
    if violation is not None:
        return violation
    for required in _REQUIRED[array]:
        if required not in obj:
            return Violation(f"missing_{required}", f"{required} is required in {array}")
    custom = array == "attributes"
    for field, value in obj.items():
        checker = checkers.get(field)
        if checker is not None:
            violation = checker(field, value)
        elif not custom:
            continue  # Braze ignores unknown keys on events and purchases
        elif type(value) in _PLAIN and field and (type(value) is not str or len(value) <= 255):
            continue  # the common custom attribute, inline: a short string, a number, a flag
        else:
            violation = _custom_attribute(field, value)
        if violation is not None:
            return violation
    return None
