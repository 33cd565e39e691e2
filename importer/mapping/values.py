"""Per-type value converters: one cell (trimmed text, or an already-typed JSONL value) -> the
Braze value, or ``OMIT`` when the value counts as empty (an array of only separators). They raise
``RecordError(code, reason)`` when the value cannot be converted.

A *text parser* is the same conversion for a trimmed, non-empty text cell only (every CSV cell):
it skips the type dispatch, which matters at ~15 parsed cells per row. Times and dates live in
``importer.mapping.times``; the per-field readers in ``importer.mapping.readers``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Final

import orjson

from importer.errors import RecordError
from importer.read import MAX_DEPTH, integer_out_of_range, json_depth

ValueConverter = Callable[[Any], Any]


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


def integer_text(text: str) -> Any:
    """``to_integer`` for a text cell; plain digits (the usual case) need no range check."""
    if len(text) < 19 and text.isdigit() and text.isascii():
        return int(text)
    return to_integer(text)


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


def float_text(text: str) -> Any:
    """``to_float`` for a text cell."""
    if text.isascii() and "_" not in text:
        try:
            number = float(text)
        except (ValueError, OverflowError):
            pass
        else:
            if math.isfinite(number):
                return number
    return to_float(text)  # the same refusal, with the same message


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


def boolean_text_parser(
    true_words: tuple[str, ...] = DEFAULT_TRUE, false_words: tuple[str, ...] = DEFAULT_FALSE
) -> ValueConverter:
    """``boolean_converter`` for a text cell: the words as listed, lower- and upper-case are
    looked up as they are; anything else is case-folded first (or refused the same way)."""
    convert = boolean_converter(true_words, false_words)
    exact: dict[str, bool] = {}
    for word in (*true_words, *false_words):
        for spelling in (word, word.lower(), word.upper(), word.capitalize()):
            try:  # what the converter says, by construction ("ı".upper() folds elsewhere)
                exact[spelling] = convert(spelling)
            except RecordError:
                continue

    def parse(text: Any) -> Any:
        result = exact.get(text)
        return convert(text) if result is None else result

    return parse


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
    problem = integer_out_of_range(value)
    if problem is not None:
        raise RecordError("bad_number", f"{show(value)}: {problem}")
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


# --- attribute operations (docs/braze.md, Operations on attributes) -----------------------------

OPERATIONS = ("set", "inc", "add", "remove", "merge")
OPERATION_TYPES = {"inc": "integer", "add": "array", "remove": "array", "merge": "json"}


def as_operation(op: str, convert: ValueConverter) -> ValueConverter:
    """``convert`` followed by what ``op`` sends: ``{"inc": n}`` (0: nothing), ``{"add": [...]}``,
    ``{"remove": [...]}``, or for ``merge`` the object itself (the converter marks the attributes
    object ``_merge_objects``); an empty value stays OMIT."""
    if op == "inc":

        def increment(value: Any) -> Any:
            number = convert(value)
            return OMIT if number is OMIT or number == 0 else {"inc": number}

        return increment
    if op in ("add", "remove"):

        def change(value: Any) -> Any:
            items = convert(value)
            return OMIT if items is OMIT else {op: items}

        return change
    if op == "merge":

        def merge(value: Any) -> Any:
            parsed = convert(value)
            if parsed is not OMIT and parsed is not None and type(parsed) is not dict:
                raise RecordError(
                    "invalid_merge",
                    f"op merge needs a JSON object, got {_kind(parsed)}: {show(parsed)}",
                )
            return parsed

        return merge
    return convert
