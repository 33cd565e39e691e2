"""How a time cell's text is laid out: a strptime ``format`` read by regex or cut at fixed
places (``TimeFormat``), and the Unix epoch formats (``format = "epoch"`` / ``"epoch_ms"``).
The parsers built on them, with their caches and zones, are in ``importer.mapping.times``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from importer.errors import RecordError

_DIGITS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_FIELDS = "YmdHMS"  # datetime's positional order
_datetime: Callable[..., datetime] = datetime  # called with 3 to 6 ints, by position


def show_time(value: Any) -> str:
    """A value for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class TimeFormat:
    """A strptime format with a regex fast path when its codes are %Y %m %d and optionally %H,
    %H %M or %H %M %S, in any order between literal characters (``%d.%m.%Y %H:%M``). Like
    strptime, one digit is enough for all but %Y. Anything else is left to strptime.

    ``fields()`` gives the faster path still, for the common case of every field written in full
    (two digits, four for the year): the parsers rearrange the text, no datetime made; and
    ``layout`` cuts such a text at fixed places, without the regex, for a day already known."""

    __slots__ = ("fixed", "fmt", "layout", "pad", "pick", "regex")

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.regex: re.Pattern[str] | None = None
        self.fixed: re.Pattern[str] | None = None
        self.pick: Callable[[tuple[str | Any, ...]], tuple[str, ...]] | None = None
        self.pad: tuple[str, ...] = ()
        self.layout: Layout | None = None
        codes: list[str] = []
        pattern = fixed = sample = ""
        spans: dict[str, slice] = {}
        places: list[int] = []  # where the literal characters are in the full-width layout
        index = 0
        while index < len(fmt):
            if fmt[index] == "%":
                code = fmt[index + 1 : index + 2]
                if code not in _DIGITS or code in codes:
                    return
                codes.append(code)
                pattern += r"(\d{4})" if code == "Y" else r"(\d{1,2})"
                fixed += r"(\d{4})" if code == "Y" else r"(\d\d)"
                spans[code] = slice(len(sample), len(sample) + _DIGITS[code])
                sample += "0" * _DIGITS[code]
                index += 2
            else:
                pattern += re.escape(fmt[index])
                fixed += re.escape(fmt[index])
                places.append(len(sample))
                sample += fmt[index]
                index += 1
        # datetime(Y, m, d, H, M, S) takes them by position: the codes must be a prefix of that.
        if len(codes) >= 3 and sorted(codes, key=_FIELDS.index) == list(_FIELDS[: len(codes)]):
            self.regex = re.compile(pattern, re.ASCII)
            self.fixed = re.compile(fixed, re.ASCII)
            # The groups in datetime's order (Y, m, d, H, M, S), wherever they are in the text.
            self.pick = operator.itemgetter(*(codes.index(code) for code in _FIELDS[: len(codes)]))
            self.pad = ("00",) * (6 - len(codes))
            pieces = [spans[code] for code in _FIELDS[: len(codes)]]
            self.layout = _layout(sample, places, pieces)

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


class Layout(NamedTuple):
    """A full-width layout read without a regex: a text of ``width`` characters whose
    ``literals(text)`` equal ``expected`` (the format's literal characters in place) is cut by
    ``pieces(text)`` into the digits of Y, m, d (H, M, S when the format has them). Nothing
    here says the pieces are digits: the parsers take them only where a lookup of known
    values (a day already seen, an hour, a minute) says so, and the regex path decides the rest."""

    width: int
    literals: Callable[[str], Any]
    expected: Any
    pieces: Callable[[str], tuple[str, ...]]


def _layout(sample: str, places: list[int], pieces: list[slice]) -> Layout:
    # One getter call per text for all the literals (the sample's own are what is expected), and
    # one for all the pieces; ``slice(0, 0)`` keeps the getter's answer a tuple (even of one).
    literals = operator.itemgetter(slice(0, 0), *places)
    return Layout(len(sample), literals, literals(sample), operator.itemgetter(*pieces))


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
        "invalid_time", f"{show_time(value)} is not a Unix time in {what} (format {unit!r})"
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
