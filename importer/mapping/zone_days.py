"""Where a wall-clock time falls in a zone: its UTC offset, worked out once per day and hour.

``in_zone`` places one naive time (a DST gap fails the record); ``DayOffsets`` remembers each
hour's offset of every day seen, so the time parsers of ``importer.mapping.times`` place most
values with two lookups and no datetime arithmetic.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import cache, lru_cache

from importer.errors import RecordError
from importer.mapping.time_formats import show_time as _show


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
        measured here, Europe/Berlin).

        A day whose first and last instant, at fold 0 and 1, share one offset has it every
        hour: 4 moments, not 96 (~170 K instructions a day; the CRM file meets 6,145 days). Only
        two changes of offset within one day could hide between them, and no zone has two
        within 48 hours; a day inside a gap (Pacific/Apia's 2011-12-30) differs at fold 1."""
        whole = self._shared(day, _DAY_ENDS)
        if whole is not None:
            return _whole_day(whole)
        offsets: list[str | None] = []
        for moments in _MOMENTS:
            offset = self._shared(day, moments)
            offsets.append(None if offset is None else _offset_text(offset))
        return tuple(offsets)

    def _shared(self, day: date, moments: tuple[time, ...]) -> timedelta | None:
        """The one offset all ``moments`` of ``day`` have, or None."""
        utcoffset, combine = self._zone.utcoffset, datetime.combine
        first, *rest = moments
        offset = utcoffset(combine(day, first))
        if offset is None:
            return None
        for moment in rest:
            if utcoffset(combine(day, moment)) != offset:
                return None
        return offset


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
_DAY_ENDS = (_MOMENTS[0][0], _MOMENTS[0][1], _MOMENTS[23][2], _MOMENTS[23][3])


@lru_cache(maxsize=64)
def _whole_day(offset: timedelta) -> tuple[str | None, ...]:
    """A day with one offset throughout: every hour's (one tuple per offset, shared)."""
    return (_offset_text(offset),) * 24


@cache
def day_offsets(zone: tzinfo) -> DayOffsets:
    """The one DayOffsets of ``zone`` in this process: two columns in one zone (a sign-up and
    a last-login time) share the days either has worked out."""
    return DayOffsets(zone)
