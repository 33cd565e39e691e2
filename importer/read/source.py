"""Sources: files, stdin, bucket objects, HTTPS -> SourceRow | RowFailure, in constant memory.

``open_source`` settles everything that can stop a run before anything is sent — the file is
readable, its format and encoding are known, a CSV header is present and has no duplicate names —
and raises InputError (exit 2) otherwise. After that, reading never raises for bad content: every
bad record comes out as a RowFailure at stage ``read`` (see ``csv_records`` and ``jsonl_records``
for the codes), and a truncated or corrupt gzip stream ends with a ``truncated_input`` failure.

Layers: ``lines`` (bytes -> numbered physical lines; gzip, BOM, memory cap), then ``csv_records``
or ``jsonl_records`` (lines -> records). This module picks and wires them.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO, Literal, cast
from urllib.parse import urlsplit

from importer.config import DEFAULT_ENCODING, DEFAULT_MAX_CELL_BYTES, ReadOptions
from importer.errors import InputError
from importer.models import RowFailure, SourceRow
from importer.read.csv_ranges import Ranges
from importer.read.csv_records import DELIMITERS, CsvParser
from importer.read.jsonl_records import JsonlParser
from importer.read.lines import ByteLines
from importer.read.locations import Location

FileFormat = Literal["csv", "jsonl"]
EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
FINGERPRINT_SPAN = 1024 * 1024
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # (UTF-32 LE starts with the first one too)
# Past this a cell is not data but a broken file; it also keeps csv.field_size_limit in a C long.
MAX_CELL_BYTES_LIMIT = 1024**3
# The characters the line and CSV layers look for must be single bytes, as in ASCII.
_ASCII_PROBE = '\n\r,;\t|"{}[]:+-.0123456789 azAZ\\'


class Source:
    """One opened source. Iterate ``rows()`` once; ``close()`` (or ``with``) when done."""

    def __init__(
        self,
        name: str,
        fmt: FileFormat,
        lines: ByteLines,
        parser: CsvParser | JsonlParser,
        *,
        size: int | None,
        encoding: str,
    ) -> None:
        self.name = name
        self.format: FileFormat = fmt
        self.size = size
        self.encoding = encoding
        self._lines = lines
        self._parser = parser
        self._rows_taken = False
        self.header: tuple[str, ...] | None = None
        self.delimiter: str | None = None
        # Where it was read from, with what its listing said (remote: size and version).
        self.location = Location(name, size)
        if isinstance(parser, CsvParser):
            self.header, self.delimiter = parser.header, parser.delimiter

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the file so far (compressed bytes for gzip), for a progress bar."""
        return self._lines.counter.count

    def rows(self) -> Iterator[SourceRow | RowFailure]:
        if self._rows_taken:
            raise InputError(f"{self.name}: rows() may be called only once")
        self._rows_taken = True
        return self._parser.records()

    def ranges(self, lines: int) -> Ranges | None:
        """Instead of ``rows()``: the raw lines after a CSV header, in ranges of at most about
        ``lines`` lines for workers to parse (importer.read.csv_ranges); None for JSONL or a
        file without a header."""
        parser = self._parser
        if self._rows_taken or not isinstance(parser, CsvParser) or not parser.has_records:
            return None
        self._rows_taken = True
        first, blocks = parser.rest()
        return Ranges(parser.layout(), self._lines, first, blocks, lines)

    def close(self) -> None:
        self._lines.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_source(name: str | Location, options: ReadOptions, *, shown_as: str = "") -> Source:
    """Open a file by name (``-`` is stdin, which needs ``options.format``) or a remote object
    (a URL, or a Location from ``expand`` carrying its size and version). A remote object is
    named ``shown_as`` (a resume: what the run named it), else by its ``display_name``."""
    location = name if isinstance(name, Location) else Location(name)
    name = location.name
    if location.remote:
        return _open_remote(location, options, shown_as or location.display)
    if name == "-":
        if options.format is None:
            raise InputError("reading stdin (-) needs the format: pass --format csv or jsonl")
        return open_stream(name, sys.stdin.buffer, options)
    try:
        stream: BinaryIO = open(name, "rb")  # noqa: SIM115 - the Source owns and closes it
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(stream.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"cannot read {name}: it is a directory")
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        return open_stream(name, stream, options, size=size, owns_stream=True)
    except BaseException:
        stream.close()
        raise


def _open_remote(location: Location, options: ReadOptions, shown_as: str) -> Source:
    from importer.read.resolve import open_remote

    stream = open_remote(location)
    try:
        size = stream.location.size
        source = open_stream(  # named without the credentials a URL may carry
            shown_as, cast(BinaryIO, stream), options, size=size, owns_stream=True
        )
    except BaseException:
        stream.close()
        raise
    source.location = stream.location
    return source


def open_stream(
    name: str,
    stream: BinaryIO,
    options: ReadOptions,
    *,
    size: int | None = None,
    owns_stream: bool = False,
) -> Source:
    """Read an already open binary stream (stdin, or a file object in tests) as ``name``.

    ``close()`` closes the stream only when ``owns_stream``."""
    fmt = options.format or format_from_name(name)
    encoding = check_encoding(options.encoding or DEFAULT_ENCODING)
    max_cell_bytes = options.max_cell_bytes or DEFAULT_MAX_CELL_BYTES
    delimiter = options.delimiter
    if delimiter is None and _base_name(name).lower().endswith(".tsv"):
        delimiter = "\t"
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InputError(f"delimiter {delimiter!r} must be one character (not a quote or newline)")
    if not 1 <= max_cell_bytes <= MAX_CELL_BYTES_LIMIT:
        raise InputError(
            f"max_cell_bytes must be from 1 to {MAX_CELL_BYTES_LIMIT} (1 GiB), not {max_cell_bytes}"
        )
    max_line = 16 * max_cell_bytes + 64 * 1024
    gzip_hint = name.lower().endswith(".gz")
    try:
        lines = ByteLines(
            stream, max_line_bytes=max_line, gzip_hint=gzip_hint, owns_raw=owns_stream
        )
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc}") from None
    # Excel's "Unicode text" export: its header could never be read (every other byte is a
    # NUL), so say why. (A JSONL file in UTF-16 fails line by line instead, as bad bytes do.)
    if fmt == "csv" and lines.head(2) in UTF16_BOMS:
        lines.close()
        raise InputError(
            f"{name} is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8, "
            "or convert it, e.g. iconv -f UTF-16 -t UTF-8"
        )
    parser: CsvParser | JsonlParser
    if fmt == "csv":
        parser = CsvParser(
            name,
            lines,
            encoding=encoding,
            delimiter=delimiter,
            max_cell_bytes=max_cell_bytes,
        )
    else:
        parser = JsonlParser(name, lines, encoding=encoding)
    return Source(name, fmt, lines, parser, size=size, encoding=encoding)


def format_from_name(name: str) -> FileFormat:
    suffix = os.path.splitext(_base_name(name))[1].lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    known = ", ".join(f"{ext}[.gz]" for ext in EXTENSIONS)
    raise InputError(f"{name}: cannot tell the format from the name ({known}); pass --format")


def check_encoding(name: str) -> str:
    """The codec's canonical name; InputError if unknown or not a superset of ASCII."""
    try:
        codec = codecs.lookup(name)
    except LookupError:
        raise InputError(f"unknown encoding {name!r} (try utf-8, cp1252 or latin-1)") from None
    if codec.name == "utf-8-sig":
        return "utf-8"  # a BOM is stripped anyway
    if codec.name.endswith("escape"):  # (raw-)unicode-escape: "\ud800" is a lone surrogate
        raise InputError(f"encoding {name!r} is not supported: convert the file to UTF-8")
    try:
        ascii_compatible = _ASCII_PROBE.encode(codec.name) == _ASCII_PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    if not ascii_compatible:
        raise InputError(f"encoding {name!r} is not supported: convert the file to UTF-8")
    return codec.name


def fingerprint(name: str) -> str | None:
    """sha256 over the size and the first and last MiB: cheap, and stable while the file is.
    (A remote object's fingerprint is its version, from its listing: ``Location.version``.)"""
    if name == "-":
        return None
    digest = hashlib.sha256()
    try:
        with open(name, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            digest.update(f"{size}:".encode())
            digest.update(stream.read(FINGERPRINT_SPAN))
            if size > FINGERPRINT_SPAN:
                stream.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN))
                digest.update(stream.read(FINGERPRINT_SPAN))
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    return f"sha256:{digest.hexdigest()}"


def _base_name(name: str) -> str:
    """The name without ``.gz`` (and a URL without its query string)."""
    if "://" in name:
        name = urlsplit(name).path
    return name[:-3] if name.lower().endswith(".gz") else name


__all__ = [
    "DELIMITERS",
    "MAX_CELL_BYTES_LIMIT",
    "Source",
    "fingerprint",
    "open_source",
    "open_stream",
]
