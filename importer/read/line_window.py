"""The decoded lines a CSV parser (``importer.read.csv_records``) still needs: its blocks decoded
as the csv reader asks for lines, kept from the first physical line of the record being parsed
on (for a failure's raw text, and to read again from the line after an unterminated quote), and
the issues decoding noted (``LineIssue``), in line order, until a record takes them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import chain

from importer.read.lines import CHECK_SIZE, RECORD_TEXT_CHARS, Block, LineIssue, decode_block


class LineWindow:
    """The window over a parser's lines; ``_start`` (the first physical line of the record being
    parsed) is moved on by the parser, and no block before it is kept."""

    def _open_window(self, blocks: Iterator[Block], encoding: str, max_cell: int) -> None:
        self._blocks = blocks
        self._encoding = encoding
        self._max_cell = max_cell
        self._window: deque[tuple[int, list[str]]] = deque()  # decoded blocks still needed
        self._issues: deque[LineIssue] = deque()  # pending, in line order
        self._start = 1  # first physical line of the record being parsed
        self._raw: list[Block] | None = None  # reading the header: the raw blocks read

    def _take_issues(self, start: int, end: int) -> tuple[LineIssue | None, bool]:
        """Pop the issues up to ``end``: the first that fails the record, and any size check."""
        found: LineIssue | None = None
        check_size = False
        issues = self._issues
        while issues and issues[0].line <= end:
            issue = issues.popleft()
            if issue.line < start:
                continue
            if issue.code == CHECK_SIZE:
                check_size = True
            elif found is None:
                found = issue
        return found, check_size

    def _lines_from(self, line: int) -> Iterator[str]:
        """Physical lines from ``line`` on: those still in the window, then new blocks.

        Chained in C: the csv reader takes a line without resuming a Python generator; one
        resumes only per block (to decode it)."""
        kept = [
            text[max(0, line - first) :]
            for first, text in list(self._window)
            if first + len(text) > line
        ]
        return chain(*kept, chain.from_iterable(self._new_blocks()))

    def _new_blocks(self) -> Iterator[list[str]]:
        while (text := self._next_block()) is not None:
            yield text

    def _next_block(self) -> list[str] | None:
        block = next(self._blocks, None)
        if block is None:
            return None
        if self._raw is not None:
            self._raw.append(block)
        text, issues = decode_block(block, self._encoding, self._max_cell)
        self._issues.extend(issues)
        window = self._window
        while window and window[0][0] + len(window[0][1]) <= self._start:
            window.popleft()
        window.append((block.first_line, text))
        return text

    def _text(self, first: int, last: int) -> str:
        """The raw text of physical lines ``first``..``last`` (for a failure's record)."""
        parts: list[str] = []
        size = 0
        for block_first, text in self._window:
            if block_first + len(text) <= first or block_first > last:
                continue
            for line in text[max(0, first - block_first) : last - block_first + 1]:
                parts.append(line)
                size += len(line)
                if size > RECORD_TEXT_CHARS:
                    return "".join(parts)
        return "".join(parts)
