"""A CSV source's records parsed in ranges of raw lines, by worker processes.

The main process reads the bytes (``lines``: gzip, BOM, line ends, the memory cap) and parses
the header; ``Ranges`` then cuts the raw physical lines into ranges that start where a record
starts — after a line where the count of quotes since the range began is even — and a worker
parses each range alone (``parse_range``: decoding and ``CsvParser``'s rules, unchanged).
Handing over one bytes object per range is a copy; handing over the cells of each row cost the
main process ~4 µs a row and the workers more.

Serial equivalence: a range parsed alone gives what the whole file parsed in one go gives for
those lines, as long as no record runs past its end. Well-formed quoting guarantees that at an
even count; broken quoting does not, so a worker's parser reports itself ``dirty`` when it met
the end inside quotes or resynchronised after an unterminated quote. Then the main process
parses that range and everything after it again in one go (``reparse``), as a single process
would have: broken files are rare, and correctness comes before speed.

A converted row comes back without its cells; its ``LineRecord`` parses them again from the
range's lines if a failure or a draft asks for them.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from itertools import chain

from importer.models import CsvRecord, RowFailure
from importer.read.csv_records import CsvItem, CsvLayout, CsvParser, Stream, truncated
from importer.read.lines import Block, LineIssue

# A range that cannot end at an even count of quotes (an unterminated quote) is handed over
# anyway past this size — its worker finds it dirty — so memory stays bounded.
CARRY_LIMIT_BYTES = 4 * 1024 * 1024


class _Whole:
    """A worker's range is all it has: its stream never broke."""

    broken: str | None = None


def parse_range(
    layout: CsvLayout, first_line: int, data: bytes, issues: tuple[LineIssue, ...]
) -> CsvParser:
    """In a worker: the parser of one range (iterate ``records()``, then look at ``dirty``)."""
    block = Block(first_line, data.splitlines(True), issues)
    return CsvParser.at(layout, _Whole(), iter((block,)), first_line)


class Ranges:
    """The ranges of one source after its header; iterate once. ``rest()`` gives back the raw
    lines not handed out yet (for ``reparse``)."""

    def __init__(
        self,
        layout: CsvLayout,
        stream: Stream,
        first_line: int,
        blocks: Iterator[Block],
        lines: int,
    ) -> None:
        self.layout = layout
        self._stream = stream
        self._blocks = blocks
        self._lines = lines  # at most this many lines a range, unless a record runs on
        self._ready: deque[Block] = deque()  # cut, not handed out yet
        self._carry: list[bytes] = []  # lines after the last even count, not cut yet
        self._carry_first = first_line
        self._carry_issues: list[LineIssue] = []
        self._carry_quotes = 0
        self._carry_bytes = 0
        self.next_line = first_line  # the first line not handed out

    def __iter__(self) -> Iterator[Block]:
        ready = self._ready
        for block in self._blocks:
            self._cut(block)
            while ready:
                out = ready.popleft()
                self.next_line = out.first_line + len(out.lines)
                yield out
        if self._carry:
            out = self._take(len(self._carry))
            self.next_line = out.first_line + len(out.lines)
            yield out

    def rest(self) -> Iterator[Block]:
        """The lines not handed out, then the rest of the stream; this object is spent."""
        kept = list(self._ready)
        self._ready.clear()
        if self._carry:
            kept.append(self._take(len(self._carry)))
        return chain(kept, self._blocks)

    def reparse(self, blocks: Iterator[Block], line: int) -> Iterator[CsvItem]:
        """The records of ``blocks`` from ``line`` (a range's first) on, parsed in one go."""
        return CsvParser.at(self.layout, self._stream, blocks, line).records()

    def truncated(self) -> RowFailure | None:
        """After the last range: the failure that says the stream broke, if it did."""
        broken = self._stream.broken
        return None if broken is None else truncated(self.layout.name, broken, self.next_line)

    def _cut(self, block: Block) -> None:
        lines, size = block.lines, self._lines
        for at in range(0, len(lines), size):
            piece = lines[at : at + size]
            first = block.first_line + at
            issues = [i for i in block.issues if first <= i.line < first + len(piece)]
            self._add(piece, issues)

    def _add(self, piece: list[bytes], issues: list[LineIssue]) -> None:
        data = b"".join(piece)
        carry = self._carry
        carry += piece
        self._carry_issues += issues
        self._carry_quotes += data.count(b'"')
        self._carry_bytes += len(data)
        if self._carry_quotes % 2 == 0:
            self._ready.append(self._take(len(carry)))
            return
        # Odd: cut before the piece's last line with an odd count of quotes (the count before
        # it is even); if it has none, the carry goes on.
        for i in range(len(carry) - 1, len(carry) - len(piece) - 1, -1):
            if carry[i].count(b'"') % 2:
                if i > 0:
                    self._ready.append(self._take(i))
                break
        if self._carry_bytes > CARRY_LIMIT_BYTES:
            self._ready.append(self._take(len(self._carry)))

    def _take(self, count: int) -> Block:
        """The carry's first ``count`` lines, as a range."""
        first, lines = self._carry_first, self._carry[:count]
        end = first + count
        issues = tuple(i for i in self._carry_issues if i.line < end)
        self._carry = self._carry[count:]
        self._carry_issues = [i for i in self._carry_issues if i.line >= end]
        self._carry_first = end
        rest = b"".join(self._carry) if self._carry else b""
        self._carry_quotes, self._carry_bytes = rest.count(b'"'), len(rest)
        return Block(first, lines, issues)


class RangeText:
    """A range's lines, kept by the records converted from it (their cells are parsed again
    only if asked for)."""

    __slots__ = ("block", "layout")

    def __init__(self, layout: CsvLayout, block: Block) -> None:
        self.layout = layout
        self.block = block

    def cells(self, line: int) -> list[str]:
        layout, block = self.layout, self.block
        lines = block.lines[line - block.first_line :]
        text = (raw.decode(layout.encoding, "replace") for raw in lines)
        return next(csv.reader(text, delimiter=layout.delimiter, strict=True))


class LineRecord(CsvRecord):
    """A CSV record converted in a worker: its cells parsed again from its lines when asked."""

    __slots__ = ("_line", "_parsed", "_text")

    def __init__(self, text: RangeText, line: int) -> None:
        self.header = text.layout.header
        self._text = text
        self._line = line
        self._parsed: list[str] | None = None

    @property
    def cells(self) -> list[str]:
        if self._parsed is None:
            self._parsed = self._text.cells(self._line)
        return self._parsed

    @cells.setter
    def cells(self, cells: list[str]) -> None:
        self._parsed = cells
