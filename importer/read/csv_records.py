"""CSV records from numbered physical lines: the header, then SourceRow | RowFailure per record.

``csv.reader`` (strict) is fed decoded physical lines, so its ``line_num`` gives each record's
first physical line cheaply. Lines that cannot make a good record (invalid bytes in the encoding,
a NUL, a line past the memory cap) are noted while decoding; a record touching one fails with that
line's code, and the run goes on.

An unterminated quote. A record spanning several physical lines that turns out malformed — a quote
error, end of file inside quotes, a cell growing past the csv field limit (``max_cell_bytes``
characters) or the wrong number of fields — is blamed on the quote opened on its first line and
never properly closed. That line fails with ``unterminated_quote`` and reading resumes at the very
next physical line, so the rest of the file is not swallowed into one cell. The lines read
meanwhile are kept (about ``max_cell_bytes`` of text at most, as the field limit stops a runaway
cell) and parsed again. The price: a legitimate quoted multi-line cell longer than
``max_cell_bytes`` characters is treated the same way (its inner lines are re-read as rows, and
usually fail as ``ragged_row``). A record on one line that breaks the quoting rules fails with
``bad_quoting``; one whose cell is too large (in bytes of the encoding) with ``cell_too_large``.

Note: the csv module's field limit is process-wide; reading sets it to ``max_cell_bytes``.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Protocol

from importer.errors import InputError
from importer.models import CsvRecord, RowFailure, RowRef, SourceRow
from importer.read.line_window import LineWindow
from importer.read.lines import CHECK_SIZE, Block, ByteLines, read_failure

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

DELIMITERS = (",", ";", "\t", "|")

CsvItem = SourceRow | RowFailure
_Parse = Generator[CsvItem, None, bool]


class Stream(Protocol):
    """What a parser asks of its line source once the blocks end: why reading broke, if it did."""

    broken: str | None


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """What parsing a CSV file's records needs besides their lines (a worker is sent this)."""

    name: str
    header: tuple[str, ...]
    delimiter: str
    encoding: str
    max_cell_bytes: int


def truncated(name: str, broken: str, line: int) -> RowFailure:
    """The failure ending a source whose stream broke before line ``line``."""
    message = (
        f"{broken}; reading stopped at line {line}: the rows before it were read, nothing after it"
    )
    return read_failure(name, line, "truncated_input", message, None)


def _from_line(blocks: list[Block], line: int) -> Iterator[Block]:
    """The blocks' lines from ``line`` on."""
    for block in blocks:
        skip = line - block.first_line
        if skip < len(block.lines):
            issues = tuple(issue for issue in block.issues if issue.line >= line)
            yield Block(max(line, block.first_line), block.lines[max(0, skip) :], issues)


def sniff_delimiter(line: str) -> str:
    """The candidate found most often in the header line; "," when there is none."""
    counts = [(line.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


class CsvParser(LineWindow):
    """Reads the header at construction (InputError if unusable); ``records()`` does the rest;
    the lines it reads are decoded and kept by its base, ``LineWindow``."""

    _head: list[Block] | None  # the raw blocks the header was read from, kept for ``rest()``

    def __init__(
        self,
        name: str,
        lines: ByteLines,
        *,
        encoding: str,
        delimiter: str | None,
        max_cell_bytes: int,
    ) -> None:
        self._setup(name, lines, lines.blocks(), encoding, max_cell_bytes)
        self.delimiter = delimiter or ","
        self._raw = []
        self._read_header(delimiter)
        self._head, self._raw = self._raw, None

    @classmethod
    def at(cls, layout: CsvLayout, stream: Stream, blocks: Iterator[Block], line: int) -> CsvParser:
        """The records of ``blocks`` from physical line ``line`` on, where a record starts, the
        header known: a range of the file (importer.read.csv_ranges)."""
        parser = cls.__new__(cls)
        parser._setup(layout.name, stream, blocks, layout.encoding, layout.max_cell_bytes)
        parser.header, parser.delimiter = layout.header, layout.delimiter
        parser._base, parser._start = line - 1, line
        parser._reader = parser._new_reader(line)
        return parser

    def _setup(
        self, name: str, stream: Stream, blocks: Iterator[Block], encoding: str, max_cell: int
    ) -> None:
        self.name = name
        self._lines = stream
        self._open_window(blocks, encoding, max_cell)
        self._base = 0  # physical line number before the reader's first line
        self._reader: _CsvReader | None = None
        self.delimiter = ","
        self.header: tuple[str, ...] = ()
        # Whether the reader resynchronised after an unterminated quote or met the end inside
        # quotes: where a range of the file was parsed alone, its end may not be a record's.
        self.dirty = False
        self._head = None
        csv.field_size_limit(max_cell)

    @property
    def has_records(self) -> bool:
        """False for an empty file (no header) or one whose records were taken."""
        return self._reader is not None

    def rest(self) -> tuple[int, Iterator[Block]]:
        """Instead of ``records()``: the first line after the header and the raw lines from
        there, for workers to parse in ranges."""
        start, head = self._start, self._head or []
        self._reader = self._head = None
        return start, chain(_from_line(head, start), self._blocks)

    def layout(self) -> CsvLayout:
        return CsvLayout(self.name, self.header, self.delimiter, self._encoding, self._max_cell)

    def records(self) -> Iterator[CsvItem]:
        """Every record after the header, then a ``truncated_input`` failure if reading broke."""
        csv.field_size_limit(self._max_cell)
        self._head = None
        while self._reader is not None:
            try:
                if not (yield from self._parse()):
                    break
            except csv.Error as exc:
                failure = self._on_csv_error(exc)
                if failure is not None:
                    yield failure
        if self._lines.broken is not None:
            yield truncated(self.name, self._lines.broken, self._start)

    def _parse(self) -> _Parse:
        """The hot loop. Returns True when it must be called again with a new reader."""
        reader = self._reader
        assert reader is not None
        base, start, issues = self._base, self._start, self._issues
        header, name = self.header, self.name
        # One-column files take the slow path, which skips whitespace-only lines as blank.
        width = len(header) if len(header) > 1 else -1
        # A row's SourceRow, RowRef and CsvRecord made in C: their Python __new__ and __init__
        # (three frames a row) cost ~2.8 K instructions a row (CRM dry run).
        new_tuple, new_object = tuple.__new__, object.__new__
        for cells in reader:
            end = base + reader.line_num
            if end == start and len(cells) == width and not (issues and issues[0].line <= end):
                record = new_object(CsvRecord)
                record.header = header
                record.cells = cells
                yield new_tuple(SourceRow, (new_tuple(RowRef, (name, start)), record))
            else:
                item = self._odd_record(cells, start, end)
                if item is not None:
                    yield item
                if self._reader is not reader:  # resynchronised after an unterminated quote
                    return True
            start = self._start = end + 1
        return False

    def _odd_record(self, cells: list[str], start: int, end: int) -> CsvItem | None:
        """Everything off the fast path: multi-line records, issues, blank and ragged lines."""
        width = len(self.header)
        if end > start and cells and len(cells) != width:
            reason = f"the record it starts runs to line {end} and has {len(cells)} fields"
            return self._unterminated(start, end, f"{reason}, not {width}")
        issue, check_size = self._take_issues(start, end)
        if issue is not None:
            text = issue.text if issue.text is not None else self._text(start, end)
            return read_failure(self.name, start, issue.code, issue.message, text)
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            return None  # a blank line is no record
        if len(cells) != width:
            message = f"line {start}: {len(cells)} fields, the header has {width}"
            return read_failure(self.name, start, "ragged_row", message, self._text(start, end))
        if check_size or end > start:
            column = self._oversized_column(cells)
            if column is not None:
                message = f"line {start}: cell {column!r} is larger than {self._max_cell} bytes"
                return read_failure(
                    self.name, start, "cell_too_large", message, self._text(start, end)
                )
        return SourceRow(RowRef(self.name, start), CsvRecord(self.header, cells))

    def _on_csv_error(self, exc: csv.Error) -> RowFailure | None:
        assert self._reader is not None
        start, end = self._start, self._base + self._reader.line_num
        detail = str(exc)
        at_eof = "unexpected end of data" in detail
        self.dirty = self.dirty or at_eof
        if at_eof and self._lines.broken is not None:
            self._reader = None  # a record cut by the broken stream: truncated_input covers it
            return None
        if "field larger" in detail:
            code, reason = "cell_too_large", f"a cell grows past {self._max_cell} bytes"
        elif at_eof:
            code, reason = "unterminated_quote", "the file ends inside it"
        else:
            code, reason = "bad_quoting", detail
        if end > start:
            return self._unterminated(start, end, f"{reason}, by line {end}")
        issue, _ = self._take_issues(start, end)
        self._start = end + 1
        if issue is not None:
            text = issue.text if issue.text is not None else self._text(start, end)
            return read_failure(self.name, start, issue.code, issue.message, text)
        if code == "unterminated_quote":
            reason = f"a quote opened on this line is not closed: {reason}"
        message = f"line {start}: {reason}"
        return read_failure(self.name, start, code, message, self._text(start, end))

    def _unterminated(self, start: int, end: int, reason: str) -> RowFailure:
        """Fail line ``start`` and read again from the next line with a fresh reader."""
        self.dirty = True
        text = self._text(start, start)
        while self._issues and self._issues[0].line <= start:
            self._issues.popleft()  # settled by this failure; later ones wait for the re-read
        self._base, self._start = start, start + 1
        self._reader = self._new_reader(start + 1)
        message = (
            f"line {start}: a quote opened on this line is not closed ({reason}); "
            f"reading resumes at line {start + 1}"
        )
        return read_failure(self.name, start, "unterminated_quote", message, text)

    def _oversized_column(self, cells: list[str]) -> str | None:
        limit = self._max_cell
        for column, cell in zip(self.header, cells, strict=True):
            if len(cell) * 4 > limit and len(cell.encode(self._encoding, "replace")) > limit:
                return column
        return None

    def _read_header(self, delimiter: str | None) -> None:
        text = self._next_block()
        while text is not None and not any(line.strip() for line in text):
            self._start = self._window[-1][0] + len(text)  # only blank lines so far
            text = self._next_block()
        if text is None:
            return  # an empty file: no header, no rows
        first = self._window[-1][0]
        line = first + next(i for i, line in enumerate(text) if line.strip())
        self.delimiter = delimiter or sniff_delimiter(text[line - first])
        self._base, self._start = line - 1, line
        self._reader = self._new_reader(line)
        try:
            cells = next(self._reader)
        except csv.Error as exc:
            raise InputError(f"{self.name}: cannot read the header (line {line}): {exc}") from None
        end = self._base + self._reader.line_num
        while self._issues and self._issues[0].line <= end:
            issue = self._issues.popleft()
            if issue.code == CHECK_SIZE:
                continue
            hint = "; pass the file's encoding (e.g. --encoding cp1252)" * (
                issue.code == "bad_encoding"
            )
            raise InputError(f"{self.name}: the header is unusable: {issue.message}{hint}")
        self.header = tuple(cell.strip() for cell in cells)
        self._start = end + 1
        # Unnamed columns (Excel's trailing separators) are never read: they may repeat.
        header = self.header
        duplicates = sorted({name for name in header if name and header.count(name) > 1})
        if duplicates:
            names = ", ".join(repr(name) for name in duplicates)
            raise InputError(f"{self.name}: duplicate column names in the header: {names}")

    def _new_reader(self, line: int) -> _CsvReader:
        return csv.reader(self._lines_from(line), delimiter=self.delimiter, strict=True)
