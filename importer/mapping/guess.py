"""What ``init-mapping`` settles for one sampled column: a ``Guess`` (type, options, what was seen).

A type is chosen the way a person would: on the whole sample, and a few bad cells do not rule it
out. ``fits`` says whether a type that fits ``good`` of ``total`` cells may be chosen; the cells
it refuses are named in the comment (how many, and an example), since those rows would fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.95  # the share of cells a type must read for a column to take it
SHORT = 40  # an example cell in a comment is cut to this many characters


@dataclass(frozen=True, slots=True)
class Guess:
    type: str  # a mapping type: string, integer, float, boolean, date, time, array, json
    note: str  # what was seen, for the comment
    format: str | None = None  # a strptime pattern for date / time
    distinct: tuple[str, ...] | None = None  # the distinct text values, when few
    options: dict[str, Any] = field(default_factory=dict)  # separator, true, false
    day_first: bool | None = None  # a day/month date: which order it was read in
    ambiguous: bool = False  # ... and the sample could not tell the order
    looks: str = ""  # what text values look like: "email", "state", "epoch" …
    suggest: dict[str, Any] | None = None  # a commented alternative: a state's map
    bad: int = 0  # sampled cells this type would refuse

    def field_options(self) -> dict[str, Any]:
        """The inline-table options for this guess (none for plain text)."""
        options: dict[str, Any] = {}
        if self.type != "string":
            options["type"] = self.type
        if self.format:
            options["format"] = self.format
        options.update(self.options)
        return options


def fits(good: int, total: int) -> bool:
    """All cells, or at least ``TOLERANCE`` of them (so one bad cell needs 20 in the sample)."""
    return good == total or (good > 0 and good >= TOLERANCE * total)


def misfits(note: str, bad: list[str], total: int) -> str:
    """``note``, plus how many of ``total`` cells the type refuses and one of them."""
    if not bad:
        return note
    return f"{note}; {len(bad)} of {total} cells are not ({example(bad[0])}): those rows would fail"


def example(text: str) -> str:
    shown = text if len(text) <= SHORT else text[: SHORT - 1] + "…"
    return repr(shown)
