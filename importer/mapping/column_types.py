"""One mapping type per sampled column, for ``init-mapping`` (see importer.mapping.draft).

The rules, in this order: JSON-native values (JSONL); digits with leading zeros or a ``+`` (kept
as text: zip codes, phone numbers); yes/no words; integers; decimals; ISO dates and timestamps;
day/month/year dates and times (importer.mapping.column_times); decimal commas (kept as text);
lists inside a cell (importer.mapping.column_words); JSON text; else text. The first rule that
reads every value wins; failing that, the first that reads at least 95% of them (the comment says
how many cells would fail, and shows one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from importer.mapping.column_times import epoch_note, epoch_unit, iso_guess, local_guess
from importer.mapping.column_words import boolean_guess, list_guess, state_map
from importer.mapping.guess import Guess, fits, misfits

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# How a mapping reads each kind of Unix time (importer.mapping.times, format = ...).
_EPOCH_FORMAT = {"seconds": "epoch", "milliseconds": "epoch_ms"}
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_CODE_DIGITS = re.compile(r"\+?\d+")
_EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")  # as importer.rules checks it
MAX_DISTINCT = 12  # distinct values kept for a map (e.g. gender words)
Rule = Callable[[list[str]], Guess | None]


def guess_type(
    values: list[Any],
    *,
    name: str = "",
    delimiter: str | None = None,
    day_first: bool | None = None,
) -> Guess:
    """The type of a column, from its present (non-empty, stripped) sampled values.

    ``name`` is the column's snake_case name (a hint: ``points`` of 0 and 1 are counted, a
    ``created_at`` of large integers is a Unix time); ``delimiter`` the file's (which separators
    can split a list); ``day_first`` the order to take when no value tells day from month."""
    if not values:
        return Guess("string", "always empty in the sample")
    native = _native(values, name)
    if native is not None:
        return native
    texts = [str(v) for v in values]
    distinct_set = set(texts)
    distinct = tuple(sorted(distinct_set)) if len(distinct_set) <= MAX_DISTINCT else None
    rules: list[Rule] = [
        _codes,
        lambda t: boolean_guess(t, name),
        lambda t: _integers(t, name),
        _decimals,
        iso_guess,
        lambda t: local_guess(t, day_first),
        _decimal_commas,
        lambda t: list_guess(t, delimiter),
        _json_text,
    ]
    tolerated: Guess | None = None
    for rule in rules:
        guess = rule(texts)
        if guess is not None and guess.bad == 0:
            return replace(guess, distinct=distinct)
        tolerated = tolerated or guess
    if tolerated is not None:
        return replace(tolerated, distinct=distinct)
    return _text(texts, distinct)


def _text(texts: list[str], distinct: tuple[str, ...] | None) -> Guess:
    emails = sum(1 for text in texts if _EMAIL.fullmatch(text))
    if fits(emails, len(texts)):
        return Guess("string", "e-mail addresses", None, distinct, looks="email")
    suggest = state_map(distinct, len(texts))
    return Guess("string", "text", None, distinct, suggest=suggest)


def _native(values: list[Any], name: str) -> Guess | None:
    if all(isinstance(v, str) for v in values):
        return None
    if all(isinstance(v, bool) for v in values):
        return Guess("boolean", "JSON booleans")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        unit = epoch_unit(name, values)
        if unit is not None:
            note = f"JSON integers, {epoch_note(unit, values)}: read as times"
            return Guess("time", note, format=_EPOCH_FORMAT[unit], looks="epoch")
        return Guess("integer", f"JSON integers ({min(values)} … {max(values)})")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return Guess("float", "JSON numbers")
    if all(isinstance(v, list) for v in values):
        items = [item for v in values for item in v]
        if all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in items):
            return Guess("array", "JSON arrays of text or numbers")
    if any(isinstance(v, dict | list) for v in values):
        return Guess("json", "nested JSON objects/arrays (a key inside is named key.sub)")
    return Guess("string", "mixed JSON types, read as text")


def _codes(texts: list[str]) -> Guess | None:
    if not fits(sum(1 for t in texts if _CODE_DIGITS.fullmatch(t)), len(texts)):
        return None
    example = next((t for t in texts if t[0] == "+" or (t[0] == "0" and len(t) > 1)), None)
    if example is None:
        return None
    return Guess("string", f"digits with leading zeros or + (e.g. {example}): kept as text")


def _integers(texts: list[str], name: str) -> Guess | None:
    good = [t for t in texts if _INTEGER.fullmatch(t)]
    if not fits(len(good), len(texts)):
        return None
    numbers = [int(t) for t in good]
    low, high = min(numbers), max(numbers)
    if low < INT64_MIN or high > INT64_MAX:
        return Guess("string", "digits too large for an integer: kept as text")
    note = f"{'all ' if len(good) == len(texts) else ''}integers ({low} … {high})"
    unit = epoch_unit(name, numbers)
    bad = [t for t in texts if not _INTEGER.fullmatch(t)]
    if unit is not None:
        note = f"integers, {epoch_note(unit, numbers)}: read as times"
        fmt = _EPOCH_FORMAT[unit]
        return Guess("time", misfits(note, bad, len(texts)), fmt, looks="epoch", bad=len(bad))
    return Guess("integer", misfits(note, bad, len(texts)), bad=len(bad))


def _decimals(texts: list[str]) -> Guess | None:
    bad = [t for t in texts if not _DECIMAL.fullmatch(t)]
    if fits(len(texts) - len(bad), len(texts)):
        return Guess("float", misfits("decimal numbers", bad, len(texts)), bad=len(bad))
    return None


def _decimal_commas(texts: list[str]) -> Guess | None:
    commas = [t for t in texts if _DECIMAL_COMMA.fullmatch(t)]
    if len(commas) < max(2, len(texts) // 20):
        return None
    bad = [t for t in texts if not (_DECIMAL_COMMA.fullmatch(t) or _INTEGER.fullmatch(t))]
    if not fits(len(texts) - len(bad), len(texts)):
        return None
    note = f"decimal commas (e.g. {commas[0]}): kept as text, as a float is read with a point"
    return Guess("string", note)


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
