"""The ``time`` and ``date`` value converters: the single biggest cost of converting a row.

Fast paths, because strptime and aware-datetime arithmetic dominate a naive implementation:
- ISO input that already has the shape Braze wants (``YYYY-MM-DDTHH:MM:SS+HH:MM``) is validated
  with ``datetime.fromisoformat`` and passed through unchanged.
- A wall time written in full (naive ISO, or a ``format`` of ``%Y %m %d %H %M %S`` and literal
  characters, every field at full width) is matched by one compiled regex and rearranged as
  text: no datetime is made, and the offset comes from a table of the day's 24 hours per zone.
- Other layouts of such a format are matched by a looser regex; anything else goes to strptime.
  A wall time is then placed in its zone with ``zone.utcoffset`` on naive datetimes (fold 0
  and 1), several times cheaper than ``replace(tzinfo=...)`` + ``astimezone``.
- The general path caches its results per (format, zone), shared by every field parsing that
  way: a column read by two fields (an attribute and an event time) is parsed once.
- A day already seen needs no regex: its text is the key of its hours' offsets (or of the days
  known to be dates), and a format's full-width text is cut at fixed places.

How a format is read (its regexes and layout) and Unix epoch times are in
``importer.mapping.time_formats``; a zone's offset per day and hour in
``importer.mapping.zone_days``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from functools import cache, lru_cache
from typing import Any

from importer.errors import RecordError
from importer.mapping.time_formats import Layout, TimeFormat
from importer.mapping.time_formats import show_time as _show
from importer.mapping.zone_days import DayOffsets, day_offsets

# Typical exports repeat timestamps (minute resolution, batch dates): ~3 MB per (format, zone).
CACHE_SIZE = 16_384
_ISO_HINT = "ISO 8601 such as 2024-05-01T12:00:00+02:00"
_DATE_HINT = "YYYY-MM-DD or an ISO 8601 timestamp"


# The naive ISO time exports write most (``2024-05-01T12:00:00``, or a space for the T).
_NAIVE_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)", re.ASCII)
_NAIVE_ISO_FIELDS = (_NAIVE_ISO.fullmatch, operator.itemgetter(0, 1, 2, 3, 4, 5), ())
_HOUR_OF = {f"{hour:02}": hour for hour in range(24)}
_SIXTY = frozenset(f"{n:02}" for n in range(60))  # a minute's or a second's two digits
_DAYS_SEEN: set[str] = set()  # YYYY-MM-DD texts known to be dates
_DAYS_KEPT = 50_000


def is_day(text: str) -> bool:
    """Whether ``text`` is a date as ``date.fromisoformat`` reads it; known days are free."""
    if text in _DAYS_SEEN:
        return True
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    if len(_DAYS_SEEN) < _DAYS_KEPT:
        _DAYS_SEEN.add(text)
    return True


def _reason(exc: ValueError, fmt: str | None, expected: str) -> str:
    message = str(exc)
    if message.startswith(("time data", "unconverted data", "Invalid isoformat")):
        return f"does not match format {fmt!r}" if fmt else f"expected {expected}"
    return message  # the calendar's word, e.g. "day is out of range for month"


@cache
def time_parser(fmt: str | None, zone: tzinfo) -> Callable[[str], str]:
    """The text -> ISO 8601 parser for one (format, zone); one per pair per process."""
    custom = TimeFormat(fmt) if fmt else None
    days = day_offsets(zone)

    @lru_cache(maxsize=CACHE_SIZE)
    def general(text: str) -> str:
        try:
            moment = custom.parse(text) if custom is not None else datetime.fromisoformat(text)
        except ValueError as exc:
            reason = _reason(exc, fmt, _ISO_HINT)
            raise RecordError(
                "invalid_time", f"{_show(text)} is not a valid time: {reason}"
            ) from None
        if moment.tzinfo is not None:
            return moment.isoformat()
        return days.place(moment, text)

    fields = _NAIVE_ISO_FIELDS if custom is None else custom.fields()
    if fields is None:
        return general
    placed = _placed(fields, days, general)
    if custom is not None:
        return (
            placed if custom.layout is None else _laid_out(custom.layout, fields[2], days, placed)
        )
    return _naive_iso_time(days, placed)


def _naive_iso_time(days: DayOffsets, placed: Callable[[str], str]) -> Callable[[str], str]:
    """The parser of a time without ``format``: a naive ISO time of a day already seen, or a
    time already as Braze wants it, without a datetime made; anything else takes ``placed``."""
    known, hour_of, sixty = days.known.get, _HOUR_OF.get, _SIXTY

    def parse(text: str) -> str:
        # A naive ISO time of a day already seen (2024-05-01T12:00:00): the day's text is the
        # key of its offsets, so one lookup checks the date, and hour, minute and second are
        # looked up too; a T-separated text only gets its offset appended.
        if len(text) == 19:
            offsets = known(text[:10])
            if offsets is not None and text[13] == ":" and text[16] == ":":
                index = hour_of(text[11:13])
                if index is not None and text[14:16] in sixty and text[17:] in sixty:
                    offset = offsets[index]
                    if offset is not None:
                        if text[10] == "T":
                            return text + offset
                        if text[10] == " ":
                            return f"{text[:10]}T{text[11:]}{offset}"
        # Already what Braze wants (2024-01-31T10:00:00+00:00): validate only, and skip the
        # cache, which doubles the cost of a value seen once (317 vs 148 ns measured here).
        if len(text) == 25 and text[10] == "T" and text[19] in "+-" and text[22] == ":":
            try:
                datetime.fromisoformat(text)
                return text
            except ValueError:
                pass  # the general path gives the reason
        return placed(text)

    return parse


Fields = tuple[Callable[[str], re.Match[str] | None], Any, tuple[str, ...]]


def _placed(
    fields: Fields, days: DayOffsets, general: Callable[[str], str]
) -> Callable[[str], str]:
    """A wall time written in full: matched, rearranged as text and given its hour's offset,
    no datetime made; anything unusual (a DST hour, an invalid field) takes ``general``."""
    match, pick, pad = fields
    hour_of, known, hours = _HOUR_OF.get, days.known.get, days.hours

    def place(text: str) -> str:
        found = match(text)
        if found is not None:
            year, month, day, hour, minute, second = pick(found.groups()) + pad
            index = hour_of(hour)
            if index is not None and minute < "60" and second < "60":
                date_text = f"{year}-{month}-{day}"
                offsets = known(date_text) or hours(date_text)
                if offsets is not None and (offset := offsets[index]) is not None:
                    return f"{date_text}T{hour}:{minute}:{second}{offset}"
        return general(text)

    return place


def _laid_out(
    layout: Layout, pad: tuple[str, ...], days: DayOffsets, placed: Callable[[str], str]
) -> Callable[[str], str]:
    """``placed`` with a path before it for a format's full-width text of a day already seen
    (06.12.2019 13:16): cut at fixed places, the day, hour, minute and second looked up, no
    regex; what ``placed`` gives for such a text, which decides everything else."""
    width, literals, expected, pieces = layout
    known, hour_of, sixty = days.known.get, _HOUR_OF.get, _SIXTY

    def parse(text: str) -> str:
        if len(text) == width and literals(text) == expected:
            year, month, day, hour, minute, second = pieces(text) + pad
            date_text = f"{year}-{month}-{day}"
            offsets = known(date_text)
            if offsets is not None:
                index = hour_of(hour)
                if index is not None and minute in sixty and second in sixty:
                    offset = offsets[index]
                    if offset is not None:
                        return f"{date_text}T{hour}:{minute}:{second}{offset}"
        return placed(text)

    return parse


@cache
def date_parser(fmt: str | None) -> Callable[[str], str]:
    """The text -> ``YYYY-MM-DD`` parser for one format."""
    custom = TimeFormat(fmt) if fmt else None

    @lru_cache(maxsize=CACHE_SIZE)
    def general(text: str) -> str:
        try:
            if custom is not None:
                return custom.parse(text).date().isoformat()
            return datetime.fromisoformat(text).date().isoformat()  # the date part, as written
        except ValueError as exc:
            reason = _reason(exc, fmt, _DATE_HINT)
            raise RecordError(
                "invalid_date", f"{_show(text)} is not a valid date: {reason}"
            ) from None

    fields = custom.fields() if custom is not None else None
    if fields is None:
        return _iso_date(general)
    assert custom is not None and custom.layout is not None  # a format with fields has one
    return _fixed_date(custom.layout, fields, general)


def _iso_date(general: Callable[[str], str]) -> Callable[[str], str]:
    """The parser of a date without ``format``: a date, or the date part of a naive ISO time,
    checked without a datetime made; anything else takes ``general``."""
    match_naive = _NAIVE_ISO.fullmatch
    seen, sixty = _DAYS_SEEN, _SIXTY

    def parse(text: str) -> str:
        if len(text) == 10 and text[4] == "-" and text[7] == "-" and is_day(text):
            return text
        # The date of a naive ISO time (an order's ``2024-05-01 12:00:00``): the time is
        # checked as fromisoformat checks it, and the date part is the answer, as written.
        # Seldom repeated to the second, such values only filled the cache. A day already
        # seen is one lookup (the set holds only YYYY-MM-DD dates), the time three more.
        if (
            len(text) == 19
            and text[:10] in seen
            and text[13] == ":"
            and text[16] == ":"
            and (text[10] == "T" or text[10] == " ")
            and text[11:13] in _HOUR_OF
            and text[14:16] in sixty
            and text[17:] in sixty
        ):
            return text[:10]
        found = match_naive(text)
        if found is not None:
            _, _, _, hour, minute, second = found.groups()
            if hour in _HOUR_OF and minute < "60" and second < "60" and is_day(text[:10]):
                return text[:10]
        return general(text)

    return parse


def _fixed_date(
    layout: Layout, fields: Fields, general: Callable[[str], str]
) -> Callable[[str], str]:
    """The parser of a date with a ``format`` whose fields a regex picks: a full-width text of a
    day already seen is cut at fixed places, another matched, no datetime made; anything else
    takes ``general``."""
    match, pick, pad = fields
    width, literals, expected, pieces = layout
    seen, sixty = _DAYS_SEEN, _SIXTY

    def parse_fixed(text: str) -> str:
        # A full-width text of a day already seen: cut at fixed places, no regex. The time a
        # format may also hold must be one strptime takes (an hour 24 is not), as below.
        if len(text) == width and literals(text) == expected:
            year, month, day, hour, minute, second = pieces(text) + pad
            date_text = f"{year}-{month}-{day}"
            if date_text in seen and hour in _HOUR_OF and minute in sixty and second in sixty:
                return date_text
        found = match(text)
        if found is not None:
            year, month, day, hour, minute, second = pick(found.groups()) + pad
            date_text = f"{year}-{month}-{day}"
            if hour in _HOUR_OF and minute < "60" and second < "60" and is_day(date_text):
                return date_text
        return general(text)

    return parse_fixed


def time_converter(fmt: str | None, zone: tzinfo) -> Callable[[Any], Any]:
    """ISO 8601 (or ``fmt``) -> ISO 8601 with offset; naive values are wall time in ``zone``.
    A JSONL number is taken as epoch seconds."""
    parse = time_parser(fmt, zone)

    def convert(value: Any) -> Any:
        if type(value) is str:
            return parse(value)
        if type(value) is int or type(value) is float:
            try:
                return datetime.fromtimestamp(value, UTC).isoformat()
            except (ValueError, OverflowError, OSError):
                pass
        raise RecordError("invalid_time", f"{_show(value)} is not a valid time")

    return convert


def date_converter(fmt: str | None) -> Callable[[Any], Any]:
    """A date (or the date part of an ISO timestamp, or ``fmt``) -> ``YYYY-MM-DD``."""
    parse = date_parser(fmt)

    def convert(value: Any) -> Any:
        if type(value) is str:
            return parse(value)
        raise RecordError("invalid_date", f"{_show(value)} is not a valid date")

    return convert
