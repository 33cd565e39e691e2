"""The text parsers (the converter's fast path for text cells) agree with the value converters:
the same value, or the same refusal with the same code and message, for any text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.errors import RecordError
from importer.mapping.times import HourlyOffsets, in_zone
from importer.mapping.values import (
    boolean_converter,
    boolean_text_parser,
    float_text,
    integer_text,
    to_float,
    to_integer,
)

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
_HOURLY = {name: HourlyOffsets(ZoneInfo(name)) for name in _ZONES}  # shared: the cache fills


@given(
    zone=st.sampled_from(_ZONES),
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)),
)
def test_an_hour_remembered_places_a_time_as_in_zone_does(zone: str, moment: datetime) -> None:
    """Offsets are remembered per wall-clock hour only where the hour has one offset; DST gaps,
    overlaps and half-hour changes (Lord Howe, Chatham) must still come out as ``in_zone``."""
    naive = moment.replace(microsecond=0)
    text = naive.isoformat()
    try:
        expected: str | RecordError = in_zone(naive, ZoneInfo(zone), text)
    except RecordError as exc:
        expected = exc
    for _ in range(2):  # once to fill the hour, once from it
        try:
            placed: str | RecordError = _HOURLY[zone].place(naive, text)
        except RecordError as exc:
            placed = exc
        if isinstance(expected, RecordError):
            assert isinstance(placed, RecordError) and placed.message == expected.message
        else:
            assert placed == expected


def test_every_hour_around_a_dst_change_places_as_in_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    hourly = HourlyOffsets(zone)
    for start in (datetime(2024, 3, 31, 0), datetime(2024, 10, 27, 0)):
        for minutes in range(0, 5 * 60, 7):
            naive = start + timedelta(minutes=minutes)
            text = naive.isoformat()
            try:
                expected = in_zone(naive, zone, text)
            except RecordError:
                with pytest.raises(RecordError):
                    hourly.place(naive, text)
                continue
            assert hourly.place(naive, text) == expected
