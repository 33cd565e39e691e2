"""Per-type value converters and the per-field reader closure the converter calls for each row.

A *value converter* takes one non-empty cell (trimmed text, or an already-typed JSONL value) and
returns the Braze value, or ``OMIT`` when the value counts as empty (an array of only
separators). It raises ``RecordError(code, reason)`` when the value cannot be converted.

A *field reader* is compiled once per mapped field and does, per row: fetch the cell, trim it,
treat ``null_values`` as empty, apply ``map``, convert, and on empty return the precomputed
``default`` / ``null`` / ``OMIT``. Times and dates live in ``importer.timefields``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from importer.errors import RecordError
from importer.reader_jsonl import MAX_DEPTH, json_depth

Record = dict[str, Any]
ValueConverter = Callable[[Any], Any]
FieldReader = Callable[[Record], Any]


class _Omit(enum.Enum):
    OMIT = "omit"


OMIT: Final = _Omit.OMIT  # "send nothing for this key"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_TRUE = ("true", "yes", "y", "t", "1")
DEFAULT_FALSE = ("false", "no", "n", "f", "0")


def show(value: Any) -> str:
    """A value for a message: repr, cut short so a 1 MB cell cannot flood the failures log."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return "an object" if type(value) is dict else "an array" if type(value) is list else "a value"


# --- scalar types -------------------------------------------------------------------------------


def to_string(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    raise RecordError("invalid_string", f"expected text, got {_kind(value)}: {show(value)}")


def to_integer(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        # int() also takes "1_000" and non-ASCII digits; a legacy export means neither.
        if value.isascii() and "_" not in value:
            try:
                number = int(value)
            except ValueError:
                pass
            else:
                return _in_int64(number, value)
        raise RecordError("invalid_integer", f"{show(value)} is not an integer")
    if kind is int:
        return _in_int64(value, value)
    if kind is float and math.isfinite(value) and value.is_integer():
        return _in_int64(int(value), value)
    raise RecordError("invalid_integer", f"{show(value)} is not an integer")


def _in_int64(number: int, shown: Any) -> int:
    if INT64_MIN <= number <= INT64_MAX:
        return number
    raise RecordError("invalid_integer", f"{show(shown)} is outside the 64-bit integer range")


def to_float(value: Any) -> Any:
    kind = type(value)
    number: float | None = None
    try:
        if kind is str:
            if value.isascii() and "_" not in value:
                number = float(value)
        elif kind is int or kind is float:
            number = float(value)
    except (ValueError, OverflowError):
        number = None
    if number is None:
        raise RecordError("invalid_float", f"{show(value)} is not a number")
    if not math.isfinite(number):
        raise RecordError("invalid_float", f"{show(value)} is not a finite number")
    return number


def boolean_converter(
    true_words: tuple[str, ...] = DEFAULT_TRUE, false_words: tuple[str, ...] = DEFAULT_FALSE
) -> ValueConverter:
    table = {word.casefold(): True for word in true_words}
    table.update({word.casefold(): False for word in false_words})
    accepted = ", ".join([*true_words, *false_words])

    def convert(value: Any) -> Any:
        if value is True or value is False:
            return value
        result = table.get((value if type(value) is str else str(value)).casefold())
        if result is None:
            raise RecordError(
                "invalid_boolean", f"{show(value)} is not a boolean (accepted: {accepted})"
            )
        return result

    return convert


def to_json(value: Any) -> Any:
    if type(value) is not str:
        return value  # JSONL: already parsed (and its depth checked by the reader)
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError("invalid_json", f"{show(value)} is not valid JSON: {exc}") from None
    # orjson reads 1024 levels but writes only 254: refuse what the packer could not send.
    if value.count("[") + value.count("{") > MAX_DEPTH and json_depth(parsed) > MAX_DEPTH:
        raise RecordError("too_deep", f"{show(value)} is nested deeper than {MAX_DEPTH} levels")
    return parsed


def array_converter(separator: str) -> ValueConverter:
    def convert(value: Any) -> Any:
        if type(value) is str:
            items: list[Any] = [item.strip() for item in value.split(separator)]
        elif type(value) is list:
            items = [item.strip() if type(item) is str else item for item in value]
        elif type(value) is dict:
            raise RecordError("invalid_array", f"expected an array, got an object: {show(value)}")
        else:
            items = [value]
        items = [item for item in items if item != "" and item is not None]
        return items if items else OMIT  # only separators: the cell counts as empty

    return convert


# --- the per-field reader -----------------------------------------------------------------------


def walk(record: Any, parts: tuple[str, ...]) -> Any:
    """JSONL ``a.b``: the value at that path, or None when some step is missing."""
    node = record
    for part in parts:
        if type(node) is not dict:
            return None
        node = node.get(part)
    return node


def field_reader(
    *,
    label: str,
    column: str,
    convert: ValueConverter | None,
    nulls: frozenset[str],
    remap: Mapping[str, Any] | None,
    on_empty: Any,
) -> FieldReader:
    """Compile one column-fed field. ``convert`` None means plain text (type string).

    ``nulls`` must contain "". ``on_empty`` is OMIT, None (send null) or the converted default.
    A column name with dots is tried as a key first (CSV), then as a path (JSONL)."""
    path = tuple(column.split(".")) if "." in column else None

    def read(record: Record) -> Any:
        raw = record.get(column)
        if raw is None and path is not None:
            raw = walk(record, path)
        if raw.__class__ is str:
            raw = raw.strip()
            if raw in nulls:
                return on_empty
            if remap is not None:
                raw = remap.get(raw, raw)
                if raw == "" or raw is None:
                    return on_empty
            if convert is None and raw.__class__ is str:
                return raw
        elif raw is None:
            return on_empty
        try:
            value = convert(raw) if convert is not None else to_string(raw)
        except RecordError as exc:
            raise RecordError(exc.code, f"{label}: {exc.message}") from None
        return on_empty if value is OMIT else value

    if path is not None or remap is not None:
        return read
    # The common shapes (a plain column holding text: every CSV cell) get a lean closure;
    # anything else (JSONL values that are typed or missing) takes the general path.
    if convert is None:

        def read_text(record: Record) -> Any:
            raw = record.get(column)
            if raw.__class__ is str:
                raw = raw.strip()
                return on_empty if raw in nulls else raw
            return read(record)

        return read_text

    def read_typed(record: Record) -> Any:
        raw = record.get(column)
        if raw.__class__ is not str:
            return read(record)
        raw = raw.strip()
        if raw in nulls:
            return on_empty
        try:
            value = convert(raw)
        except RecordError as exc:
            raise RecordError(exc.code, f"{label}: {exc.message}") from None
        return on_empty if value is OMIT else value

    return read_typed


def literal_reader(value: Any) -> FieldReader:
    """A ``{ value = ... }`` field: the same (already converted) value for every row."""

    def read(record: Record) -> Any:
        return value

    return read
