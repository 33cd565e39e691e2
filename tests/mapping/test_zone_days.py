"""A zone's offsets remembered per day and hour place every wall time as ``in_zone`` does:
through DST gaps, overlaps and half-hour changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.errors import RecordError
from importer.mapping.zone_days import DayOffsets, in_zone

_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "UTC")
_DAILY = {name: DayOffsets(ZoneInfo(name)) for name in _ZONES}  # shared: the cache fills
_DAILY["datetime.UTC"] = DayOffsets(UTC)  # its days are not worked out but written down


@given(
    zone=st.sampled_from(sorted(_DAILY)),
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)),
)
def test_an_hour_remembered_places_a_time_as_in_zone_does(zone: str, moment: datetime) -> None:
    """Offsets are remembered per day and hour, only where the hour has one offset; DST gaps,
    overlaps and half-hour changes (Lord Howe, Chatham) must still come out as ``in_zone``."""
    naive = moment.replace(microsecond=0)
    text = naive.isoformat()
    try:
        where = UTC if zone == "datetime.UTC" else ZoneInfo(zone)
        expected: str | RecordError = in_zone(naive, where, text)
    except RecordError as exc:
        expected = exc
    for _ in range(2):  # once to fill the hour, once from it
        try:
            placed: str | RecordError = _DAILY[zone].place(naive, text)
        except RecordError as exc:
            placed = exc
        if isinstance(expected, RecordError):
            assert isinstance(placed, RecordError) and placed.message == expected.message
        else:
            assert placed == expected


def test_every_hour_around_a_dst_change_places_as_in_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    hourly = DayOffsets(zone)
    for start in (datetime(2024, 3, 31, 0), datetime(2024, 10, 27, 0)):
        for minutes in range(0, 5 * 60, 7):
            _places_as_in_zone(hourly, zone, start + timedelta(minutes=minutes))


def _places_as_in_zone(days: DayOffsets, zone: ZoneInfo, naive: datetime) -> None:
    text = naive.isoformat()
    try:
        expected = in_zone(naive, zone, text)
    except RecordError:
        with pytest.raises(RecordError):
            days.place(naive, text)
        return
    assert days.place(naive, text) == expected, text


@pytest.mark.parametrize(
    ("zone_name", "start"),
    [
        ("Pacific/Apia", datetime(2011, 12, 25)),  # 2011-12-30 never happened there
        ("America/Havana", datetime(2024, 3, 5)),  # changes at midnight
        ("America/Havana", datetime(2024, 11, 1)),
        ("Australia/Lord_Howe", datetime(2024, 4, 3)),  # half an hour back
        ("Europe/Berlin", datetime(2024, 3, 28)),
    ],
)
def test_every_hour_of_the_days_around_a_change_places_as_in_zone(
    zone_name: str, start: datetime
) -> None:
    """A day is worked out from its ends when they share one offset; the days around a change,
    a day skipped whole and changes at midnight must still place each hour's first and last
    minute as ``in_zone`` does."""
    zone = ZoneInfo(zone_name)
    days = DayOffsets(zone)
    for hour in range(8 * 24):
        for minute in (0, 29, 31, 59):
            _places_as_in_zone(days, zone, start + timedelta(hours=hour, minutes=minute))
