"""Physical lines from a byte stream, for the CSV and JSONL readers.

Plain or gzip (recognised by its magic bytes, whatever the name), a UTF-8 BOM stripped, lines split
on CR, LF or CRLF and numbered from 1, in blocks of about ``BLOCK_BYTES``. Memory stays bounded: a
line longer than ``max_line_bytes`` is not kept — it becomes an empty placeholder line carrying a
``line_too_long`` issue. A read error (a truncated or corrupt gzip stream, an I/O error) never
raises: the lines read so far are delivered and ``broken`` tells what happened.

``decode_block`` turns a block into text line by line (so one bad line cannot hide the others),
noting lines with bytes invalid in the encoding or a NUL as issues for the record layer.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from importer.models import RowFailure, RowRef

BLOCK_BYTES = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
RECORD_TEXT_CHARS = 10_000  # raw text kept in a read failure's ``record``
CHECK_SIZE = "check_size"  # a long line with multi-byte text: measure its cells in bytes


@dataclass(frozen=True, slots=True)
class LineIssue:
    """A physical line that cannot make a good record (bad bytes, NUL, far too long)."""

    line: int
    code: str
    message: str
    text: str | None = None  # raw text to log when the line itself was not kept


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive physical lines, each with its terminator (the file's last may lack one)."""

    first_line: int
    lines: list[bytes]
    issues: tuple[LineIssue, ...] = ()


class _Readable(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...
    def peek(self, size: int, /) -> bytes: ...


SNIFF_BYTES = 4  # the first read holds at least this much: gzip magic, a BOM


class CountingReader(io.RawIOBase):
    """Counts the bytes taken from the underlying stream (compressed bytes for gzip).

    It takes what the stream has (``read1``) instead of waiting for a whole block: a slow
    producer piped into stdin has its lines read as they come, not 256 KiB at a time. A file
    gives whole blocks either way."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._take = getattr(raw, "read1", raw.read)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._take(len(buffer))
        while self.count == 0 and 0 < len(data) < min(SNIFF_BYTES, len(buffer)):
            more = self._take(len(buffer) - len(data))  # the start decides gzip, BOM
            if not more:
                break
            data += more
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def read_failure(source: str, line: int, code: str, message: str, text: str | None) -> RowFailure:
    """A stage-``read`` failure; ``text`` is the raw line(s), cut to RECORD_TEXT_CHARS."""
    record = None if text is None else text.rstrip("\r\n")[:RECORD_TEXT_CHARS]
    return RowFailure(RowRef(source, line), "read", code, message, record)


def describe_read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed stream ends early (truncated file)"
    return f"{type(exc).__name__}: {exc}"


class ByteLines:
    """Splits a binary stream into numbered physical lines; see the module docstring."""

    def __init__(
        self, raw: BinaryIO, *, max_line_bytes: int, gzip_hint: bool = False, owns_raw: bool = False
    ) -> None:
        self.counter = CountingReader(raw)
        self._raw = raw
        self._owns_raw = owns_raw
        self._buffered = io.BufferedReader(self.counter, BLOCK_BYTES)
        self._stream: _Readable = self._buffered
        self._gzip: gzip.GzipFile | None = None
        if gzip_hint or self._buffered.peek(2)[:2] == GZIP_MAGIC:
            self._gzip = gzip.GzipFile(fileobj=self._buffered, mode="rb")
            self._stream = self._gzip
        self._max_line = max_line_bytes
        self.broken: str | None = None  # why reading stopped early, if it did

    def blocks(self) -> Iterator[Block]:
        """Yield blocks of whole lines; at the end, the unterminated last line if any."""
        parts: list[bytes] = []  # the current line so far (no line end seen yet)
        size = 0
        issues: list[LineIssue] = []  # for the placeholders in the next block
        skipping: LineIssue | None = None  # a too-long line being thrown away
        first = 1  # number of the next line to deliver
        data = self._read_start()
        while data:
            if skipping is not None:
                rest = self._skip_rest(data)
                if rest is None:
                    data = self._read()
                    continue
                data = rest
                issues.append(skipping)
                skipping = None
            if b"\n" not in data and b"\r" not in data and not (parts and parts[-1][-1:] == b"\r"):
                parts.append(data)
                size += len(data)
            else:
                parts.append(data)
                lines = b"".join(parts).splitlines(True)
                # A last line without LF may still grow (or be the CR of a CRLF cut in two).
                parts = [] if lines[-1].endswith(b"\n") else [lines.pop()]
                size = len(parts[0]) if parts else 0
                if lines:
                    yield Block(first, lines, tuple(issues))
                    first += len(lines)
                    issues = []
            if size > self._max_line and parts[-1][-1:] != b"\r":  # (a CR ends its line)
                skipping = self._too_long(first, parts)
                parts, size = [], 0
            data = self._read()
        if skipping is not None:
            yield Block(first, [b"\n"], (*issues, skipping))
        elif parts and self.broken is None:
            yield Block(first, [b"".join(parts)], tuple(issues))

    def _read_start(self) -> bytes:
        """The first piece of the stream, at least as long as a BOM, with any BOM removed."""
        data = self._read()
        while data and len(data) < len(UTF8_BOM):
            more = self._read()
            if not more:
                break
            data += more
        return data.removeprefix(UTF8_BOM)

    def _skip_rest(self, data: bytes) -> bytes | None:
        """Drop the rest of a too-long line; None if it goes on past ``data``.

        What follows its end is returned behind an empty placeholder line, so numbering holds.
        """
        ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
        if not ends:
            return None
        end = min(ends)
        if data[end : end + 2] == b"\r\n":
            end += 1
        elif end == len(data) - 1 and data[end] == 13:
            # A CR ending the piece may be the first half of a CRLF: swallow a following LF.
            nxt = self._read()
            return b"\n" + (nxt[1:] if nxt[:1] == b"\n" else nxt)
        return b"\n" + data[end + 1 :]

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of the content (decompressed), without consuming them."""
        try:
            return self._stream.peek(size)[:size]
        except (OSError, EOFError, zlib.error):
            return b""  # ``blocks()`` meets the same error and reports it

    def _read(self) -> bytes:
        """The next piece of the stream; b"" at its end or after an error (see ``broken``)."""
        if self.broken is not None:
            return b""
        try:
            return self._stream.read1(BLOCK_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            self.broken = describe_read_error(exc)
            return b""

    def _too_long(self, line: int, parts: list[bytes]) -> LineIssue:
        head = b"".join(parts)[:RECORD_TEXT_CHARS].decode("utf-8", "replace")
        message = f"line {line} is longer than {self._max_line} bytes; it was skipped"
        return LineIssue(line, "line_too_long", message, head)

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()  # leaves its file object open
        self._buffered.close()  # closes the counter, which leaves ``raw`` open
        if self._owns_raw:
            self._raw.close()


def decode_block(
    block: Block, encoding: str, max_cell_bytes: int
) -> tuple[list[str], list[LineIssue]]:
    """Decode a block's lines; invalid bytes and NULs become issues (the line decoded with
    replacement characters stays, so the record structure around it holds)."""
    issues = list(block.issues)
    lines = block.lines
    text: list[str] | None = None
    if b"\0" not in b"".join(lines):  # the fast path: one check and one decode per line
        with contextlib.suppress(UnicodeDecodeError):
            text = [line.decode(encoding) for line in lines]
    if text is None:  # line by line, to tell which lines are bad
        text = [
            _decode_line(block.first_line + i, line, encoding, issues)
            for i, line in enumerate(lines)
        ]
    limit = max_cell_bytes // 4  # past this many characters a cell may pass the limit in bytes
    if sum(map(len, lines)) != sum(map(len, text)) and max(map(len, text)) > limit:
        issues += [
            LineIssue(block.first_line + i, CHECK_SIZE, "")
            for i, line in enumerate(text)
            if len(line) > limit
        ]
    issues.sort(key=lambda issue: issue.line)
    return text, issues


def _decode_line(number: int, raw: bytes, encoding: str, issues: list[LineIssue]) -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end].hex(" ")
        message = f"line {number}: bytes {bad} at byte {exc.start + 1} are not valid {encoding}"
        issues.append(LineIssue(number, "bad_encoding", message))
        return raw.decode(encoding, "replace")
    if "\0" in text:
        column = text.index("\0") + 1
        issues.append(LineIssue(number, "nul_byte", f"line {number}: NUL byte at column {column}"))
    return text
