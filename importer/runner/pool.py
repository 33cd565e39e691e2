"""Converting on every core: chunks of rows -> worker processes -> outcomes, in source order.

What costs CPU per row — parsing CSV, converting, checking Braze's rules, ``--state``'s hashing,
serialising the objects — runs in worker processes. The main process reads a CSV source's bytes
and hands over ranges of its raw lines (``convert_range``, importer.read.csv_ranges): one bytes
object each, where handing over each row's cells cost it ~4 µs a row and the workers more
(a JSONL source is still read here, and handed over in chunks of ``CHUNK_ROWS`` records). It
gets back, per row, the line, the user and the objects already as JSON (``Item.wire``):
unpickling the dicts instead cost the main process ~8 µs per row, the bytes ~1.5 µs. The
answers are joined in reading order, so everything after this stage — per-user order, line numbers,
accounting, resume, retry, ``--state``, signals, ``--dry-run`` — sees the stream a single
process would have produced.

Small inputs (under ``POOL_MIN_BYTES`` in all) never pay for processes. Where it can, the pool
forks its workers — cheap, and nothing to import again — before the event loop starts, so they
hold no sockets; elsewhere it spawns them, and they rebuild the converters from
``ConverterSpec``s. Workers ignore SIGINT: a Ctrl-C is the main process's to handle (drain,
then stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_all_start_methods, get_context
from typing import Any

from importer.convert import Converter
from importer.errors import AbortError
from importer.mapping import CompiledMapping, default_mapping, mapping_from_text
from importer.models import CsvRecord, Item, RowFailure, RowRef, RowSkipped, SourceRow
from importer.read.csv_ranges import LineRecord, RangeText, parse_range
from importer.read.csv_records import CsvLayout
from importer.read.lines import Block, LineIssue
from importer.send import serialised

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h (glibc)
_KEEP_BYTES = 64 * 1024 * 1024  # at most this much freed memory kept per process
CHUNK_ROWS = 500  # rows per hand-over: ~10 ms of work, small enough to keep the order cheap
# Sources smaller than this are converted in the main process: starting processes costs more.
POOL_MIN_BYTES = 2_000_000
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size

# importer.state's per-item hashing, run where the item is made: (item, value digests too?)
Digests = Callable[[Item, bool], Any]
Outcome = Item | RowFailure | RowSkipped
# A worker's answer for one row: (user, wire, digests, operations key) for an Item, else the
# failure (its record left out: the main process has it) or the skip.
_Answer = tuple[str, Any, Any, str | None] | RowFailure | RowSkipped


def default_workers() -> int:
    """The cores this process may use (a process pinned to one core runs as a single one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ConverterSpec:
    """How a worker builds one source's converter: from the text of the mapping the main
    process loaded (not the file, which may have changed since), or the default mapping of
    the source's header."""

    source: str
    mapping_path: str | None = None
    mapping_text: str | None = None
    header: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls, mapping: CompiledMapping | None, source: str, header: Sequence[str] | None
    ) -> ConverterSpec:
        if mapping is None:
            return cls(source, header=None if header is None else tuple(header))
        return cls(source, mapping_path=mapping.path, mapping_text=mapping.text)

    def build(self) -> Converter:
        if self.mapping_text is not None:
            return Converter(mapping_from_text(self.mapping_path or "", self.mapping_text))
        return Converter(default_mapping(self.header, self.source))


# --- in the worker process -----------------------------------------------------------------

_converters: list[Converter] = []
_digests: Digests | None = None
# Each chunk's header arrives as a new tuple; the converter knows a header by identity (it
# generates a source's code once per header), so the worker hands it the first equal one.
_headers: dict[tuple[str, ...], tuple[str, ...]] = {}
_layouts: dict[CsvLayout, CsvLayout] = {}  # the same for a range's layout


def _start_worker(specs: Sequence[ConverterSpec], digests: Digests | None, parent: int) -> None:
    global _digests
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setprofile(None)  # a profiler of the main process is not forked along
    _die_with(parent)
    import gc

    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the main process runs (importer.runner.entry)
    keep_freed_memory()
    _converters[:] = [spec.build() for spec in specs]
    _digests = digests


def keep_freed_memory() -> None:
    """Have malloc keep what is freed for the next range instead of giving it back at once.

    Each range's bytes, answers and pickles (~1 MB) are allocated and freed again; glibc
    returned the top of the heap (and any block over its mmap threshold) to the system every
    time, and the next range faulted every page in again: ~100,000 page faults per 60,000
    rows, a tenth of the workers' CPU in the kernel. Not glibc (or no libc found): nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES // 2)


def _die_with(parent: int) -> None:
    """End this worker when the main process is gone, however it went (SIGKILL, OOM): a forked
    worker holds both ends of the pool's pipes, so it would never see them close, and an
    orphan keeps the caller's stderr open. Linux says so at once (PR_SET_PDEATHSIG); elsewhere
    a thread looks every half second."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the request was made
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> None:
    """Nothing: submitted once per worker so the processes start before rows arrive."""


def convert_chunk(
    source: int,
    name: str,
    header: tuple[str, ...] | None,
    rows: list[tuple[int, Any]],
    values: bool = True,
) -> list[_Answer]:
    """Convert one chunk of a source: (line, cells or record dict) pairs -> answers. ``values``:
    whether --state wants each attribute's digest too (importer.state.DeltaStage.wants_values)."""
    convert = _converters[source].convert
    digests = _digests
    if header is not None:
        header = _headers.setdefault(header, header)
    answers: list[_Answer] = []
    for line, data in rows:
        record = data if header is None else CsvRecord(header, data)
        answers.append(_answer(convert(SourceRow(RowRef(name, line), record)), digests, values))
    return answers


def _answer(out: Outcome, digests: Digests | None, values: bool) -> _Answer:
    if out.__class__ is Item:
        item: Item = out
        if digests is not None:
            item = item._replace(digests=digests(item, values))
        return (item.user, serialised(item).wire, item.digests, item.operations)
    if isinstance(out, RowFailure):
        return replace(out, record=None)
    return out  # type: ignore[return-value]


def convert_range(
    source: int,
    layout: CsvLayout,
    first_line: int,
    data: bytes,
    issues: tuple[LineIssue, ...],
    settled: frozenset[int],
    values: bool = True,
) -> tuple[bool, list[int], list[_Answer | None]]:
    """Parse and convert one range of a CSV source (importer.read.csv_ranges): whether its
    parser was dirty (then nothing else), and each record's line and answer; a record whose
    line is in ``settled`` (resume) is left unconverted, its answer None. A read failure comes
    back whole, a row's failure without its record (the main process has the lines)."""
    layout = _layouts.setdefault(layout, layout)  # its header: the converter's cache key
    parser = parse_range(layout, first_line, data, issues)
    convert = _converters[source].convert
    digests = _digests
    lines: list[int] = []
    answers: list[_Answer | None] = []
    for row in parser.records():
        if parser.dirty:
            return True, [], []
        line = row.ref.line
        lines.append(line)
        if line in settled:
            answers.append(None)
        elif isinstance(row, RowFailure):
            answers.append(row)
        else:
            answers.append(_answer(convert(row), digests, values))
    return parser.dirty, lines, answers


# --- in the main process -------------------------------------------------------------------


class Chunk:
    """Rows handed over together (a reader's failures among them, passed through in place),
    and their outcomes once known."""

    __slots__ = ("answers", "outcomes", "rows")

    def __init__(self, rows: list[SourceRow | RowFailure]) -> None:
        self.rows = rows
        self.answers: Future[list[_Answer]] | None = None
        self.outcomes: list[Outcome] | None = None  # converted in the main process

    def done(self) -> bool:
        return self.answers is None or self.answers.done()

    async def wait(self) -> None:
        if self.answers is not None:
            with contextlib.suppress(Exception):  # joined() raises it, in order
                await asyncio.wrap_future(self.answers)

    def joined(self) -> list[Outcome]:
        if self.outcomes is not None:
            return self.outcomes
        assert self.answers is not None
        try:
            answers = iter(self.answers.result())
        except BrokenProcessPool as exc:
            raise _died(exc) from None
        outcomes: list[Outcome] = []
        for row in self.rows:
            if isinstance(row, RowFailure):
                outcomes.append(row)
                continue
            answer = next(answers)
            if answer.__class__ is tuple:
                user, wire, digests, key = answer
                outcomes.append(Item(row.ref, row.record, user, (), (), (), digests, wire, key))
            elif isinstance(answer, RowFailure):
                outcomes.append(replace(answer, record=row.record))
            else:
                outcomes.append(answer)  # type: ignore[arg-type]
        return outcomes


class RangeChunk:
    """A range handed over, and its outcomes once known (None: dirty, parse it again)."""

    __slots__ = ("answers", "text")

    def __init__(self, text: RangeText, answers: Future[tuple[bool, list[int], list[Any]]]) -> None:
        self.text = text
        self.answers = answers

    def done(self) -> bool:
        return self.answers.done()

    async def wait(self) -> None:
        with contextlib.suppress(Exception):  # joined() raises it, in order
            await asyncio.wrap_future(self.answers)

    def joined(self, outcome: Callable[[str, int], str | None]) -> list[Outcome | str] | None:
        """The outcomes in order, a settled row's as its recorded outcome (``outcome``)."""
        try:
            dirty, lines, answers = self.answers.result()
        except BrokenProcessPool as exc:
            raise _died(exc) from None
        if dirty:
            return None
        text = self.text
        name = text.layout.name
        outcomes: list[Outcome | str] = []
        for line, answer in zip(lines, answers, strict=True):
            if answer.__class__ is tuple:
                user, wire, digests, key = answer
                record = LineRecord(text, line)
                ref = RowRef(name, line)
                outcomes.append(Item(ref, record, user, (), (), (), digests, wire, key))
            elif answer is None:
                outcomes.append(outcome(name, line) or "")
            elif isinstance(answer, RowFailure) and answer.stage != "read":
                outcomes.append(replace(answer, record=LineRecord(text, line)))
            else:
                outcomes.append(answer)
        return outcomes


def _widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Give the pipes the workers' answers come back through room for a whole answer.

    The executor's thread in this process reads an answer (~1 MB for a range) one pipe-full at
    a time and takes the GIL back after each read: with 64 KiB pipes that was ~20 waits for a
    busy main thread per answer, and the worker sat blocked writing meanwhile. Linux only;
    elsewhere (or past the system's pipe-max-size) the pipes stay as they are."""
    try:
        import fcntl
    except ImportError:  # Windows
        return
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    queues = (getattr(executor, "_result_queue", None), getattr(executor, "_call_queue", None))
    for queue in queues:
        for end in ("_reader", "_writer"):
            connection = getattr(queue, end, None)
            if setpipe is None or connection is None:
                continue
            with contextlib.suppress(OSError):
                fcntl.fcntl(connection.fileno(), setpipe, PIPE_BYTES)


def _died(exc: BrokenProcessPool) -> AbortError:
    return AbortError(f"a conversion worker process died ({exc}); `braze-import resume` goes on")


class ConvertPool:
    """Worker processes converting chunks of one attempt's sources."""

    def __init__(
        self, workers: int, specs: Sequence[ConverterSpec], digests: Digests | None = None
    ) -> None:
        self.workers = workers
        self._specs = tuple(specs)
        self._digests = digests
        self._executor: ProcessPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Chunks handed over and not yet joined: enough to keep every worker busy."""
        return 2 * self.workers + 1

    def start(self) -> None:
        """Start the processes: before the event loop and its sockets exist, as a fork copies
        what the process holds (the workers never touch it)."""
        methods = get_all_start_methods()
        self._executor = ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("fork" if "fork" in methods else "spawn"),
            initializer=_start_worker,
            initargs=(self._specs, self._digests, os.getpid()),
        )
        _widen_pipes(self._executor)
        keep_freed_memory()  # this process takes the answers in, as large and as often
        for _ in range(self.workers):
            self._executor.submit(_ready)

    def chunk(self, source: int, rows: list[SourceRow | RowFailure], values: bool = True) -> Chunk:
        """Hand ``rows`` (all of source ``source``) over for conversion."""
        chunk = Chunk(rows)
        payload: list[tuple[int, Any]] = []
        header: tuple[str, ...] | None = None
        for row in rows:
            if isinstance(row, SourceRow):
                record = row.record
                if isinstance(record, CsvRecord):
                    header = record.header
                    payload.append((row.ref.line, record.cells))
                else:
                    payload.append((row.ref.line, record))
        if not payload:  # the reader's failures only
            chunk.outcomes = [row for row in rows if isinstance(row, RowFailure)]
            return chunk
        if self._executor is None:  # never silently drop rows
            raise RuntimeError("rows handed to a conversion pool that is not running")
        name = rows[0].ref.source
        chunk.answers = self._executor.submit(convert_chunk, source, name, header, payload, values)
        return chunk

    def range(
        self, source: int, layout: CsvLayout, block: Block, settled: frozenset[int], values: bool
    ) -> RangeChunk:
        """Hand a range of source ``source``'s raw lines over to be parsed and converted."""
        if self._executor is None:
            raise RuntimeError("rows handed to a conversion pool that is not running")
        data = b"".join(block.lines)
        args = (source, layout, block.first_line, data, block.issues, settled, values)
        return RangeChunk(RangeText(layout, block), self._executor.submit(convert_range, *args))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
