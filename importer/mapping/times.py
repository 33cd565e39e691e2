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
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from typing import Any

from importer.errors import RecordError

# Typical exports repeat timestamps (minute resolution, batch dates): ~3 MB per (format, zone).
CACHE_SIZE = 16_384
_DIGITS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_FIELDS = "YmdHMS"  # datetime's positional order
_datetime: Callable[..., datetime] = datetime  # called with 3 to 6 ints, by position
_ISO_HINT = "ISO 8601 such as 2024-05-01T12:00:00+02:00"
_DATE_HINT = "YYYY-MM-DD or an ISO 8601 timestamp"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@lru_cache(maxsize=64)
def _offset_text(offset: timedelta) -> str:
    """``+02:00`` exactly as ``datetime.isoformat`` writes it (seconds for old LMT offsets)."""
    return datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat()[19:]


def in_zone(naive: datetime, zone: tzinfo, text: str) -> str:
    """A wall-clock time in ``zone`` as ISO 8601 with offset. In a DST overlap the first
    occurrence (fold 0) wins; a wall time inside a DST gap never happened: the record fails."""
    offset = zone.utcoffset(naive)
    if offset is None:  # not a real zone; cannot happen with zoneinfo
        offset = timedelta(0)
    if zone is not UTC:
        after = zone.utcoffset(naive.replace(fold=1))
        if after is not None and offset < after:  # the clock jumped forward over this time
            raise RecordError(
                "nonexistent_time",
                f"{_show(text)} does not exist in {zone} (skipped by a daylight-saving change)",
            )
    return naive.isoformat() + _offset_text(offset)


class DayOffsets:
    """``in_zone`` for one zone, with the UTC offset of each wall-clock hour remembered per day.

    Placing a wall time costs two ``utcoffset`` calls; exports rarely repeat a timestamp to the
    second, but they repeat the day, so the first value of a day works out its 24 hours at once.
    An hour is remembered only when its first and last instant, at fold 0 and 1, have one offset:
    an hour holding a daylight-saving change (a gap, an overlap, a half-hour zone's change) is
    None and always takes ``in_zone``.
    """

    __slots__ = ("_zone", "known")
    KEPT = 20_000  # days remembered (~55 years of them, ~6 MB); beyond that, every value asks

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self.known: dict[str, tuple[str | None, ...]] = {}  # day -> its hours' offsets

    def hours(self, day: str) -> tuple[str | None, ...] | None:
        """The offset text of each hour of ``day`` (``YYYY-MM-DD``); None if it is no date."""
        offsets = self.known.get(day)
        if offsets is None:
            try:
                start = date.fromisoformat(day)
            except ValueError:
                return None
            offsets = _UTC_DAY if self._zone is UTC else self._day(start)
            if len(self.known) < self.KEPT:
                self.known[day] = offsets
        return offsets

    def place(self, naive: datetime, text: str) -> str:
        iso = naive.isoformat()
        offsets = self.hours(iso[:10])
        offset = offsets[naive.hour] if offsets is not None else None
        if offset is None:
            return in_zone(naive, self._zone, text)
        return iso + offset

    def _day(self, day: date) -> tuple[str | None, ...]:
        """Each hour's offset when its first and last instant, at fold 0 and 1, share one.
        One loop over moments made by ``combine`` (``replace(fold=1)`` cost ~2 µs a call):
        exports spread over years meet a new day every few dozen rows (76 → 12.5 µs a day
        measured here, Europe/Berlin)."""
        utcoffset, combine = self._zone.utcoffset, datetime.combine
        offsets: list[str | None] = []
        for first, first_1, last, last_1 in _MOMENTS:
            offset = utcoffset(combine(day, first))
            if (
                offset is not None
                and offset == utcoffset(combine(day, first_1))
                and offset == utcoffset(combine(day, last))
                and offset == utcoffset(combine(day, last_1))
            ):
                offsets.append(_offset_text(offset))
            else:
                offsets.append(None)
        return tuple(offsets)


# Per hour of a day: its first and its last instant, at fold 0 and at fold 1.
_MOMENTS = tuple(
    (
        time(hour),
        time(hour, fold=1),
        time(hour, 59, 59, 999_999),
        time(hour, 59, 59, 999_999, fold=1),
    )
    for hour in range(24)
)
_UTC_DAY: tuple[str | None, ...] = ("+00:00",) * 24


@cache
def day_offsets(zone: tzinfo) -> DayOffsets:
    """The one DayOffsets of ``zone`` in this process: two columns in one zone (a sign-up and
    a last-login time) share the days either has worked out."""
    return DayOffsets(zone)


class TimeFormat:
    """A strptime format with a regex fast path when its codes are %Y %m %d and optionally %H,
    %H %M or %H %M %S, in any order between literal characters (``%d.%m.%Y %H:%M``). Like
    strptime, one digit is enough for all but %Y. Anything else is left to strptime.

    ``fields()`` gives the faster path still, for the common case of every field written in full
    (two digits, four for the year): the parsers rearrange the text, no datetime made."""

    __slots__ = ("fixed", "fmt", "pad", "pick", "regex")

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.regex: re.Pattern[str] | None = None
        self.fixed: re.Pattern[str] | None = None
        self.pick: Callable[[tuple[str | Any, ...]], tuple[str, ...]] | None = None
        self.pad: tuple[str, ...] = ()
        codes: list[str] = []
        pattern = fixed = ""
        index = 0
        while index < len(fmt):
            if fmt[index] == "%":
                code = fmt[index + 1 : index + 2]
                if code not in _DIGITS or code in codes:
                    return
                codes.append(code)
                pattern += r"(\d{4})" if code == "Y" else r"(\d{1,2})"
                fixed += r"(\d{4})" if code == "Y" else r"(\d\d)"
                index += 2
            else:
                pattern += re.escape(fmt[index])
                fixed += re.escape(fmt[index])
                index += 1
        # datetime(Y, m, d, H, M, S) takes them by position: the codes must be a prefix of that.
        if len(codes) >= 3 and sorted(codes, key=_FIELDS.index) == list(_FIELDS[: len(codes)]):
            self.regex = re.compile(pattern, re.ASCII)
            self.fixed = re.compile(fixed, re.ASCII)
            # The groups in datetime's order (Y, m, d, H, M, S), wherever they are in the text.
            self.pick = operator.itemgetter(*(codes.index(code) for code in _FIELDS[: len(codes)]))
            self.pad = ("00",) * (6 - len(codes))

    def parse(self, text: str) -> datetime:
        found = self.regex.fullmatch(text) if self.regex is not None else None
        if found is not None and self.pick is not None:
            try:
                return _datetime(*map(int, self.pick(found.groups())))
            except ValueError:
                pass  # strptime may split run-together digits differently; it has the last word
        return datetime.strptime(text, self.fmt)

    def fields(self) -> tuple[Callable[[str], re.Match[str] | None], Any, tuple[str, ...]] | None:
        """How to read a text in the full-width layout: its match, the groups picked in
        datetime's order (Y, m, d, H, M, S), padded with ``00`` for codes the format lacks;
        None when the format has no such layout."""
        if self.fixed is None or self.pick is None:
            return None
        return self.fixed.fullmatch, self.pick, self.pad


# The naive ISO time exports write most (``2024-05-01T12:00:00``, or a space for the T).
_NAIVE_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)", re.ASCII)
_NAIVE_ISO_FIELDS = (_NAIVE_ISO.fullmatch, operator.itemgetter(0, 1, 2, 3, 4, 5), ())
_HOUR_OF = {f"{hour:02}": hour for hour in range(24)}
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
    match, pick, pad = fields
    hour_of, known, hours = _HOUR_OF.get, days.known.get, days.hours
    aware = custom is None  # without a format, ISO text with an offset may come

    def parse(text: str) -> str:
        # Already what Braze wants (2024-01-31T10:00:00+00:00): validate only, and skip the
        # cache, which doubles the cost of a value seen once (317 vs 148 ns measured here).
        if aware and len(text) == 25 and text[10] == "T" and text[19] in "+-" and text[22] == ":":
            try:
                datetime.fromisoformat(text)
                return text
            except ValueError:
                pass  # the general path gives the reason
        # A wall time written in full: rearranged as text and given its hour's offset, no
        # datetime made; anything unusual (a DST hour, an invalid field) takes the general path.
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
    match_naive = _NAIVE_ISO.fullmatch
    if fields is None:

        def parse(text: str) -> str:
            if len(text) == 10 and text[4] == "-" and text[7] == "-" and is_day(text):
                return text
            # The date of a naive ISO time (an order's ``2024-05-01 12:00:00``): the time is
            # checked as fromisoformat checks it, and the date part is the answer, as written.
            # Seldom repeated to the second, such values only filled the cache.
            found = match_naive(text)
            if found is not None:
                _, _, _, hour, minute, second = found.groups()
                if hour in _HOUR_OF and minute < "60" and second < "60" and is_day(text[:10]):
                    return text[:10]
            return general(text)

        return parse
    match, pick, _ = fields

    def parse_fixed(text: str) -> str:
        found = match(text)
        if found is not None:
            year, month, day = pick(found.groups())[:3]
            date_text = f"{year}-{month}-{day}"
            if is_day(date_text):
                return date_text
        return general(text)

    return parse_fixed

    return parse


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


# --- epoch times: format = "epoch" (seconds) or "epoch_ms" (milliseconds) ------------------------

EPOCH_FORMATS = {"epoch": 6, "epoch_ms": 3}  # format -> decimal places to reach microseconds
_SCALE = {6: 1_000_000, 3: 1_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _epoch_micros(value: Any, places: int) -> int | None:
    """Microseconds since 1970 of an epoch cell (integer or decimal text, a JSONL number), with
    integer arithmetic so a millisecond never turns into 999 microseconds; None if it is none."""
    kind = type(value)
    if kind is int:
        return int(value) * _SCALE[places]
    if kind is float:
        text = repr(value)
    elif kind is str:
        text = value
    else:
        return None
    if _EPOCH_TEXT.fullmatch(text) is None:
        return None
    whole, _, fraction = text.partition(".")
    negative = whole.startswith("-")
    fraction = (fraction + "0" * places)[:places]  # digits beyond a microsecond are dropped
    micros = abs(int(whole)) * _SCALE[places] + int(fraction or "0")
    return -micros if negative else micros


def _epoch_datetime(value: Any, unit: str) -> datetime:
    micros = _epoch_micros(value, EPOCH_FORMATS[unit])
    if micros is not None:
        try:
            return _EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            pass
    what = "seconds" if unit == "epoch" else "milliseconds"
    raise RecordError(
        "invalid_time", f"{_show(value)} is not a Unix time in {what} (format {unit!r})"
    )


def epoch_time_converter(unit: str) -> Callable[[Any], Any]:
    """Unix seconds / milliseconds (text or number, integer or decimal) -> ISO 8601 in UTC."""

    def convert(value: Any) -> Any:
        return _epoch_datetime(value, unit).isoformat()

    return convert


def epoch_date_converter(unit: str) -> Callable[[Any], Any]:
    """Unix seconds / milliseconds -> the UTC day, ``YYYY-MM-DD``."""

    def convert(value: Any) -> Any:
        return _epoch_datetime(value, unit).date().isoformat()

    return convert
