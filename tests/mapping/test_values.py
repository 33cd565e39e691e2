"""The text parsers (the converter's fast path for text cells) agree with the value converters:
the same value, or the same refusal with the same code and message, for any text."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.errors import RecordError
from importer.mapping.times import date_parser, time_parser
from importer.mapping.values import (
    boolean_converter,
    boolean_text_parser,
    float_text,
    integer_text,
    to_float,
    to_integer,
)
from importer.mapping.zone_days import in_zone

NUMBERS = st.one_of(
    st.integers().map(str),
    st.integers(-(2**70), 2**70).map(lambda n: f"{n:+}"),
    st.floats().map(repr),
    st.from_regex(r"[ +-]?[0-9_.eE٠-٩²]{1,25}", fullmatch=True),
    st.sampled_from(["9223372036854775807", "9223372036854775808", "0" * 30 + "7", "1e999"]),
    st.text(max_size=12),
)
WORDS = st.one_of(
    st.sampled_from(["yes", "YES", "Yes", "yEs", "no", "TRUE", "f", "1", "0", "ja", "JA", "ß"]),
    st.sampled_from(["SS", "ss", "İ", "ı", "I", "maybe"]),
    st.text(max_size=6),
)


def outcome(convert: Callable[[Any], Any], text: str) -> tuple[str, Any]:
    try:
        value = convert(text)
    except RecordError as exc:
        return "refused", (exc.code, exc.message)
    return type(value).__name__, value


@settings(max_examples=500, deadline=None)
@given(NUMBERS)
def test_integer_text_is_to_integer(text: str) -> None:
    assert outcome(integer_text, text) == outcome(to_integer, text)


@settings(max_examples=500, deadline=None)
@given(NUMBERS)
def test_float_text_is_to_float(text: str) -> None:
    assert outcome(float_text, text) == outcome(to_float, text)


@settings(max_examples=300, deadline=None)
@given(
    WORDS,
    st.sampled_from(
        [
            (("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0")),
            (("J", "ja"), ("N",)),
            (("ß", "İ"), ("ı",)),
        ]
    ),
)
def test_boolean_text_parser_is_boolean_converter(
    text: str, words: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    assert outcome(boolean_text_parser(*words), text) == outcome(boolean_converter(*words), text)


_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "UTC")
_FORMATS = (None, "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H", "%d.%m.%Y")
_NEAR_MISSES = st.sampled_from(
    [
        "2024-02-30T10:00:00",
        "2023-02-29 00:00:00",
        "2024-03-31T02:30:00",
        "2024-10-27T02:30:00",
        "2024-01-01T24:00:00",
        "2024-01-01T23:60:00",
        "2024-01-01T23:59:60",
        "0000-01-01T00:00:00",
        "31.12.2024 23:59",
        "32.12.2024 10:00",
        "29.02.2023 10:00",
        "1.2.2024 3:04",
        "2024-1-01T10:00:00",
        "2024-01-01T10:00:00+02:00",
        "2024-01-01t10:00:00",
        "٢٠٢٤-01-01T10:00:00",
        "12/31/2024 07",
    ]
)


def _reference_time(text: str, fmt: str | None, zone: ZoneInfo) -> str:
    """What a time cell gives, made the slow, obvious way: strptime or fromisoformat, then the
    zone's offset for that wall time (a DST gap refused)."""
    try:
        moment = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        raise RecordError("invalid_time", "") from None
    if moment.tzinfo is not None:
        return moment.isoformat()
    return in_zone(moment, zone, text)


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(_ZONES),
    fmt=st.sampled_from(_FORMATS),
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)),
    near_miss=st.none() | _NEAR_MISSES,
)
def test_a_time_written_in_full_comes_out_as_the_datetime_way(
    zone: str, fmt: str | None, moment: datetime, near_miss: str | None
) -> None:
    """The text fast path (fields rearranged, the hour's offset from the day's table) gives the
    value the datetime way gives, and refuses what it refuses — DST gaps, overlaps (first
    occurrence wins), half-hour zones, impossible dates and hours included."""
    text = near_miss or (
        moment.isoformat(sep=" " if moment.minute % 2 else "T")[:19]
        if fmt is None
        else moment.strftime(fmt)
    )
    _assert_timed_the_datetime_way(text, fmt, zone)


def _assert_timed_the_datetime_way(text: str, fmt: str | None, zone: str) -> None:
    try:
        expected: str | None = _reference_time(text, fmt, ZoneInfo(zone))
    except RecordError:
        expected = None
    try:
        got: str | None = time_parser(fmt, ZoneInfo(zone))(text)
    except RecordError:
        got = None
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from((None, "%d.%m.%Y", "%m/%d/%Y", "%Y%m%d")),
    day=st.dates(min_value=date(1, 1, 1)),
    near_miss=st.none() | st.sampled_from(["30.02.2024", "2023-02-29", "00.01.2024", "2024-13-01"]),
)
def test_a_date_written_in_full_comes_out_as_the_datetime_way(
    fmt: str | None, day: date, near_miss: str | None
) -> None:
    text = near_miss or (day.isoformat() if fmt is None else day.strftime(fmt))
    _assert_dated_the_datetime_way(text, fmt)


def _assert_dated_the_datetime_way(text: str, fmt: str | None) -> None:
    try:
        moment = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
        expected: str | None = moment.date().isoformat()
    except ValueError:
        expected = None
    try:
        got: str | None = date_parser(fmt)(text)
    except RecordError:
        got = None
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1)),
    sep=st.sampled_from("T t"),
    near_miss=st.none() | _NEAR_MISSES,
)
def test_the_date_of_a_naive_iso_time_comes_out_as_the_datetime_way(
    moment: datetime, sep: str, near_miss: str | None
) -> None:
    _assert_dated_the_datetime_way(near_miss or moment.isoformat(sep=sep)[:19], None)


# A text with one character changed: a digit, a separator, a letter, a non-ASCII digit.
_CHANGES = st.none() | st.tuples(st.integers(0, 24), st.sampled_from("0123456789:-./T tX٢"))


def _changed(text: str, change: tuple[int, str] | None) -> str:
    if change is None:
        return text
    at, char = change
    return text[:at] + char + text[at + 1 :]


@settings(max_examples=500, deadline=None)
@given(
    zone=st.sampled_from(_ZONES),
    fmt=st.sampled_from((*_FORMATS, "%Y%m%d%H%M%S", "%H:%M %Y-%m-%d")),
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)),
    change=_CHANGES,
)
def test_a_time_of_a_day_already_seen_comes_out_as_the_datetime_way(
    zone: str, fmt: str | None, moment: datetime, change: tuple[int, str] | None
) -> None:
    """The lookups for a day already seen (no regex: the day's offsets by its text, the text cut
    at fixed places for a format) give the value the datetime way gives, or refuse it, for
    a text of that day in full and for one with any character changed."""

    def written(when: datetime) -> str:
        if fmt is None:
            return when.isoformat(sep=" " if when.minute % 2 else "T")[:19]
        return when.strftime(fmt)

    with contextlib.suppress(RecordError):  # the day is now known
        time_parser(fmt, ZoneInfo(zone))(written(moment.replace(hour=12, minute=0, second=0)))
    _assert_timed_the_datetime_way(_changed(written(moment), change), fmt, zone)


@settings(max_examples=400, deadline=None)
@given(
    fmt=st.sampled_from((None, "%d.%m.%Y", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H")),
    moment=st.datetimes(min_value=datetime(1, 1, 1)),
    sep=st.sampled_from("T "),
    change=_CHANGES,
)
def test_a_date_of_a_day_already_seen_comes_out_as_the_datetime_way(
    fmt: str | None, moment: datetime, sep: str, change: tuple[int, str] | None
) -> None:
    """The same for dates: a day already seen, a naive ISO time of it, or a format's text."""

    def written(when: datetime) -> str:
        return when.isoformat(sep=sep)[:19] if fmt is None else when.strftime(fmt)

    with contextlib.suppress(RecordError):  # the day is now known
        date_parser(fmt)(written(moment.replace(hour=12)))
    _assert_dated_the_datetime_way(_changed(written(moment), change), fmt)


def test_a_date_format_with_a_time_refuses_an_hour_strptime_refuses() -> None:
    """The regex took any two digits for the hour of a date format with one: 24 passed."""
    parse = date_parser("%Y-%m-%d %H:%M:%S")
    assert parse("2000-01-01 23:59:59") == "2000-01-01"
    with pytest.raises(RecordError, match="not a valid date"):
        parse("2000-01-01 24:00:00")
