"""One mapping type per sampled column, for ``init-mapping`` (see importer.mapping.draft).

The first rule every value passes wins, in this order: JSON-native values (JSONL), digits with
leading zeros or a ``+`` (kept as text: zip codes, phone numbers), integers, decimals, yes/no words,
ISO dates, ISO timestamps, a few common local date / time patterns, JSON text; else text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BOOL_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CODE_DIGITS = re.compile(r"\+?\d+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_LOCAL_TIME = re.compile(r"[\d./: -]+")
DATE_FORMATS = ("%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d-%m-%Y")
TIME_FORMATS = tuple(f"{day} {clock}" for day in DATE_FORMATS for clock in ("%H:%M", "%H:%M:%S"))
MAX_DISTINCT = 12  # distinct values kept for a map (e.g. gender words)


@dataclass(frozen=True, slots=True)
class Guess:
    type: str  # a mapping type: string, integer, float, boolean, date, time, json
    note: str  # what was seen, for the comment
    format: str | None = None  # a strptime pattern for date / time
    distinct: tuple[str, ...] | None = None  # the distinct text values, when few

    def field_options(self) -> dict[str, Any]:
        """The inline-table options for this guess (none for plain text)."""
        options: dict[str, Any] = {}
        if self.type != "string":
            options["type"] = self.type
        if self.format:
            options["format"] = self.format
        return options


def guess_type(values: list[Any]) -> Guess:
    """The type of a column, from its present (non-empty, stripped) sampled values."""
    if not values:
        return Guess("string", "always empty in the sample")
    native = _native(values)
    if native is not None:
        return native
    texts = [str(v) for v in values]
    distinct_set = set(texts)
    distinct = tuple(sorted(distinct_set)) if len(distinct_set) <= MAX_DISTINCT else None
    for rule in (_codes, _integers, _decimals, _booleans, _dates, _times, _local, _json_text):
        guess = rule(texts)
        if guess is not None:
            return Guess(guess.type, guess.note, guess.format, distinct)
    return Guess("string", "text", None, distinct)


def _native(values: list[Any]) -> Guess | None:
    if all(isinstance(v, str) for v in values):
        return None
    if all(isinstance(v, bool) for v in values):
        return Guess("boolean", "JSON booleans")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return Guess("integer", f"JSON integers ({min(values)} … {max(values)})")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return Guess("float", "JSON numbers")
    if any(isinstance(v, dict | list) for v in values):
        return Guess("json", "nested JSON objects/arrays (a key inside is named key.sub)")
    return Guess("string", "mixed JSON types, read as text")


def _codes(texts: list[str]) -> Guess | None:
    if not all(_CODE_DIGITS.fullmatch(t) for t in texts):
        return None
    example = next((t for t in texts if t[0] == "+" or (t[0] == "0" and len(t) > 1)), None)
    if example is None:
        return None
    return Guess("string", f"digits with leading zeros or + (e.g. {example}): kept as text")


def _integers(texts: list[str]) -> Guess | None:
    if not all(_INTEGER.fullmatch(t) for t in texts):
        return None
    numbers = [int(t) for t in texts]
    low, high = min(numbers), max(numbers)
    if low < INT64_MIN or high > INT64_MAX:
        return Guess("string", "digits too large for an integer: kept as text")
    return Guess("integer", f"all integers ({low} … {high})")


def _decimals(texts: list[str]) -> Guess | None:
    if all(_DECIMAL.fullmatch(t) for t in texts):
        return Guess("float", "all decimal numbers")
    return None


def _booleans(texts: list[str]) -> Guess | None:
    words = {t.lower() for t in texts}
    # A lone single letter (a column of "F" only) is more likely a code than a yes/no.
    if words <= BOOL_WORDS and (len(words) > 1 or len(next(iter(words))) > 1):
        return Guess("boolean", f"yes/no values ({', '.join(sorted(words))})")
    return None


def _dates(texts: list[str]) -> Guess | None:
    if not all(_ISO_DATE.fullmatch(t) and _parses(date.fromisoformat, t) for t in texts):
        return None
    return Guess("date", f"ISO dates (e.g. {texts[0]})")


def _times(texts: list[str]) -> Guess | None:
    matches = [_ISO_TIME.fullmatch(t) for t in texts]
    if not all(matches) or not any(len(t) > 10 for t in texts):
        return None
    if not all(_parses(datetime.fromisoformat, t.replace("Z", "+00:00")) for t in texts):
        return None
    note = f"ISO timestamps (e.g. {texts[0]})"
    if not all(m and m.group(1) for m in matches):
        note += "; no UTC offset: read as UTC unless you add timezone"
    return Guess("time", note)


def _local(texts: list[str]) -> Guess | None:
    if not all(_LOCAL_TIME.fullmatch(t) for t in texts):
        return None
    for kind, formats in (("date", DATE_FORMATS), ("time", TIME_FORMATS)):
        for pattern in formats:
            if all(_parses(lambda t, p=pattern: datetime.strptime(t, p), t) for t in texts):
                note = f"{kind}s written {pattern} (e.g. {texts[0]})"
                if "%m/%d" in pattern or "%d/%m" in pattern:
                    note += "; check day/month order"
                return Guess(kind, note, pattern)
    return None


def _json_text(texts: list[str]) -> Guess | None:
    if all(t[0] in "{[" and _parses(json.loads, t) for t in texts):
        return Guess("json", "JSON text")
    return None


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except (ValueError, OverflowError, RecursionError):
        return False
    return True
