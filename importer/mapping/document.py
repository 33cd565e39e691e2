"""Where a key sits in a TOML text, so mapping errors can name a line and column.

tomllib reports positions only for syntax errors; for everything found later (an unknown option,
a wrong type name, a column missing from the header) ``MappingDoc.fail`` scans the text — which
tomllib has already accepted — for the key path and raises ``MappingError`` there. Paths are
tuples of table keys and array indexes: ``("events", 0, "properties", "plan", "type")``.
"""

from __future__ import annotations

import bisect
import difflib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from importer.errors import MappingError

KeyPath = tuple[str | int, ...]
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def dotted(where: KeyPath) -> str:
    """``("events", 0, "time")`` -> ``events[0].time``; odd names are quoted as TOML would."""
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if part and set(part) <= _BARE else f'"{part}"'
            text += f".{name}" if text else name
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


@dataclass
class MappingDoc:
    """The mapping file being compiled: its name and text, and where each key sits."""

    path: str
    text: str
    _positions: dict[KeyPath, tuple[int, int]] | None = field(default=None, repr=False)

    def locate(self, where: KeyPath) -> tuple[int, int]:
        if self._positions is None:
            scanner = _Scanner(self.text)
            try:
                self._positions = scanner.scan()
            except RecursionError:  # absurd nesting: keep the positions found before it
                self._positions = scanner.found
        for end in range(len(where), 0, -1):
            if where[:end] in self._positions:
                return self._positions[where[:end]]
        return (1, 1)

    def fail(self, where: KeyPath, message: str) -> NoReturn:
        line, column = self.locate(where)
        key = dotted(where)
        raise MappingError(
            f"{key}: {message}" if key else message,
            path=self.path,
            line=line,
            column=column,
            key=key,
        )


class _Scanner:
    """Collects the position of every key of an (already valid) TOML document."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line_starts = [0] + [n + 1 for n, char in enumerate(text) if char == "\n"]
        self.found: dict[KeyPath, tuple[int, int]] = {}
        self.table_arrays: dict[KeyPath, int] = {}  # [[x]] seen so far, by path

    def scan(self) -> dict[KeyPath, tuple[int, int]]:
        table: KeyPath = ()
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.text):
                return self.found
            start = self.i
            if self.text.startswith("[[", self.i):
                table = self.header(2)
            elif self.text[self.i] == "[":
                table = self.header(1)
            else:
                self.pair(table)
            if self.i == start:  # cannot happen on valid TOML; never loop forever
                self.i += 1

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def peek(self, size: int = 1) -> str:
        return self.text[self.i : self.i + size]

    def skip(self, *, newlines: bool = False) -> None:
        while self.i < len(self.text):
            char = self.text[self.i]
            if char in " \t" or (newlines and char in "\r\n"):
                self.i += 1
            elif char == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def note(self, where: KeyPath, offset: int) -> None:
        self.found.setdefault(where, self.at(offset))

    def header(self, brackets: int) -> KeyPath:
        self.i += brackets
        keys = self.keys()
        self.skip()
        self.i += brackets
        path: KeyPath = ()
        for number, (name, offset) in enumerate(keys):
            path += (name,)
            self.note(path, offset)
            if brackets == 2 and number == len(keys) - 1:
                self.table_arrays[path] = self.table_arrays.get(path, 0) + 1
            if path in self.table_arrays:
                path += (self.table_arrays[path] - 1,)
                self.note(path, offset)
        return path

    def pair(self, table: KeyPath) -> None:
        path = table
        for name, offset in self.keys():
            path += (name,)
            self.note(path, offset)
        self.skip()
        if self.peek() == "=":
            self.i += 1
            self.value(path)

    def keys(self) -> list[tuple[str, int]]:
        keys: list[tuple[str, int]] = []
        while True:
            self.skip()
            start = self.i
            if self.peek() in ('"', "'"):
                raw = self.string()
                name = tomllib.loads(f"k = {raw}")["k"] if "\\" in raw else raw[1:-1]
            else:
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.i += 1
                name = self.text[start : self.i]
            keys.append((str(name), start))
            self.skip()
            if self.peek() != ".":
                return keys
            self.i += 1

    def string(self) -> str:
        """Skip one string of any of TOML's four kinds; return its source text."""
        start, quote = self.i, self.peek()
        delimiter = quote * 3 if self.peek(3) == quote * 3 else quote
        self.i += len(delimiter)
        while self.i < len(self.text) and not self.text.startswith(delimiter, self.i):
            self.i += 2 if quote == '"' and self.text[self.i] == "\\" else 1
        self.i += len(delimiter)
        while delimiter != quote and self.peek() == quote:  # """a"""" ends in content quotes
            self.i += 1
        return self.text[start : self.i]

    def value(self, path: KeyPath) -> None:
        self.skip()
        char = self.peek()
        if char == "{":
            self.items(path, "}", inline_table=True)
        elif char == "[":
            self.items(path, "]", inline_table=False)
        elif char in ('"', "'"):
            self.string()
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]}\r\n#":
                self.i += 1

    def items(self, path: KeyPath, closing: str, *, inline_table: bool) -> None:
        """The entries of an inline table (``key = value``) or an array (values by index)."""
        self.i += 1
        index = 0
        while True:
            self.skip(newlines=True)
            start = self.i
            if self.peek() in (closing, ""):
                self.i += 1
                return
            if inline_table:
                self.pair(path)
            else:
                self.note((*path, index), self.i)
                self.value((*path, index))
                index += 1
            self.skip(newlines=True)
            if self.peek() == ",":
                self.i += 1
            if self.i == start:  # cannot happen on valid TOML; never loop forever
                self.i += 1
