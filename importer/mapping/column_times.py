"""Dates and times in a sampled column, for ``init-mapping`` (see importer.mapping.column_types).

ISO 8601 values; the day/month/year patterns exports use (``25.04.1946``, ``4/25/1946``,
``1946/04/25``, with or without a clock, 24-hour or AM/PM); integers that look like Unix epoch
times. Day-first or month-first is settled by the values: the order no value contradicts. When
every value reads both ways (no day above 12) the guess says so and takes the order it is told to
prefer; the draft tells it what another column of the file, or the file itself, suggests.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from importer.mapping.guess import Guess, example, fits, misfits
from importer.mapping.time_formats import TimeFormat

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_LOCAL = re.compile(
    r"(\d{1,2}|\d{4})([./-])\d{1,2}\2(\d{4}|\d{1,2})"
    r"(?:([ T])(\d{1,2}:\d{2})(:\d{2})?(\s?)([AaPp][Mm])?)?"
)
# Unix times between 2000-01-01 and 2100-01-01, in seconds or milliseconds.
_EPOCH_LOW, _EPOCH_HIGH = 946_684_800, 4_102_444_800
_EPOCH_NAME = re.compile(
    r"(^|_)(at|ts|time|timestamp|date|epoch|created|updated|modified|login|seen|since|datum|zeit)"
    r"($|_)"
)


def iso_guess(texts: list[str]) -> Guess | None:
    """ISO dates -> ``date``; ISO timestamps (dates may be among them) -> ``time``."""
    good, bad = [], []
    offsets = 0
    for text in texts:
        found = _ISO.fullmatch(text)
        if found and _parses(text):
            good.append(text)
            offsets += found.group(1) is not None
        else:
            bad.append(text)
    if not fits(len(good), len(texts)):
        return None
    if all(len(text) == 10 for text in good):
        return Guess("date", misfits(f"ISO dates (e.g. {good[0]})", bad, len(texts)), bad=len(bad))
    stamp = next(text for text in good if len(text) > 10)
    note = f"ISO timestamps (e.g. {stamp}); {offset_note(offsets, len(good))}"
    return Guess("time", misfits(note, bad, len(texts)), bad=len(bad))


def offset_note(with_offset: int, total: int) -> str:
    """What the sample holds about UTC offsets, truthfully."""
    if with_offset == total:
        return "every value carries its UTC offset"
    if with_offset == 0:
        return "no value carries a UTC offset: read as UTC unless you add timezone"
    return (
        f"mixed: {with_offset} of {total} carry a UTC offset, the others are read as UTC "
        "unless you add timezone"
    )


def local_guess(texts: list[str], prefer_day_first: bool | None = None) -> Guess | None:
    """``dd.mm.yyyy``-like values (with a clock: ``time``). ``prefer_day_first`` settles a
    sample that reads both ways; None: day-first unless the dates are written with ``/``."""
    shapes = Counter(_shape(text) for text in texts)
    shape, _ = shapes.most_common(1)[0]
    if shape is None:
        return None
    year_first, separator, clock = shape
    kind = "time" if clock else "date"
    if year_first:
        return _settled(texts, kind, f"%Y{separator}%m{separator}%d{clock}", None, "")
    day = f"%d{separator}%m{separator}%Y{clock}"
    month = f"%m{separator}%d{separator}%Y{clock}"
    day_fits, month_fits = _count(texts, day), _count(texts, month)
    if day_fits != month_fits:
        chosen_day = day_fits > month_fits
        chosen, other = (day, month) if chosen_day else (month, day)
        proof = next(
            t for t in texts if _parses(t, TimeFormat(chosen)) and not _parses(t, TimeFormat(other))
        )
        why = f"; {'day' if chosen_day else 'month'}-first, as {example(proof)} shows"
        return _settled(texts, kind, chosen, chosen_day, why)
    if prefer_day_first is None:
        prefer_day_first = separator != "/"
    note = (
        "; the sample cannot tell day from month (no value has a day above 12): "
        f"read {'day' if prefer_day_first else 'month'}-first, check it"
    )
    guess = _settled(texts, kind, day if prefer_day_first else month, prefer_day_first, note)
    return None if guess is None else replace(guess, ambiguous=True)


def _shape(text: str) -> tuple[bool, str, str] | None:
    """(year first, the date separator, the clock's strptime pattern or "")."""
    found = _LOCAL.fullmatch(text)
    if found is None:
        return None
    first, separator, last = found.group(1), found.group(2), found.group(3)
    year_first = len(first) == 4
    if year_first == (len(last) == 4):  # one year, of four digits, at one end
        return None
    clock = ""
    if found.group(5):
        hour = "%I" if found.group(8) else "%H"
        clock = f"{found.group(4)}{hour}:%M{':%S' if found.group(6) else ''}"
        if found.group(8):
            clock += f"{found.group(7)}%p"
    return year_first, separator, clock


def _count(texts: list[str], fmt: str) -> int:
    parser = TimeFormat(fmt)
    counts = Counter(texts)
    return sum(n for text, n in counts.items() if _parses(text, parser))


def _settled(
    texts: list[str], kind: str, fmt: str, day_first: bool | None, extra: str
) -> Guess | None:
    parser = TimeFormat(fmt)
    bad = [text for text in texts if not _parses(text, parser)]
    if not fits(len(texts) - len(bad), len(texts)):
        return None
    shown = next(text for text in texts if _parses(text, parser))
    note = f"{kind}s written {fmt} (e.g. {shown}){extra}"
    if kind == "time":
        note += "; no UTC offset: read as UTC unless you add timezone"
    return Guess(kind, misfits(note, bad, len(texts)), fmt, day_first=day_first, bad=len(bad))


def _parses(text: str, parser: TimeFormat | None = None) -> bool:
    try:
        if parser is not None:
            parser.parse(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return False
    return True


def epoch_unit(name: str, numbers: list[Any]) -> str | None:
    """ "seconds" or "milliseconds" when a column named like a time holds Unix times."""
    if not numbers or not _EPOCH_NAME.search(name):
        return None
    low, high = min(numbers), max(numbers)
    for unit, scale in (("seconds", 1), ("milliseconds", 1000)):
        if _EPOCH_LOW * scale <= low and high < _EPOCH_HIGH * scale:
            return unit
    return None


def epoch_note(unit: str, numbers: list[Any]) -> str:
    scale = 1000 if unit == "milliseconds" else 1
    first, last = (_day(min(numbers) / scale), _day(max(numbers) / scale))
    return f"Unix epoch {unit} ({first} … {last})"


def _day(seconds: float) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()
