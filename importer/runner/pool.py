"""Converting on every core: chunks of rows -> worker processes -> outcomes, in source order.

Reading stays in the main process, in order; what costs CPU per row — converting, checking
Braze's rules, ``--state``'s hashing, serialising the objects — runs in worker processes on
chunks of ``CHUNK_ROWS`` rows. The main process hands a chunk over as (line, cells) pairs and
gets back, per row, the user and the objects already as JSON (``Item.wire``): unpickling the
dicts instead cost the main process ~8 µs per row, the bytes ~1.5 µs. The chunks are joined
in the order they were read, so everything after this stage — per-user order, line numbers,
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
from importer.send import serialised

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
CHUNK_ROWS = 500  # rows per hand-over: ~10 ms of work, small enough to keep the order cheap
# Sources smaller than this are converted in the main process: starting processes costs more.
POOL_MIN_BYTES = 2_000_000

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


def _start_worker(specs: Sequence[ConverterSpec], digests: Digests | None, parent: int) -> None:
    global _digests
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setprofile(None)  # a profiler of the main process is not forked along
    _die_with(parent)
    import gc

    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the main process runs (importer.runner.entry)
    _converters[:] = [spec.build() for spec in specs]
    _digests = digests


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
        out = convert(SourceRow(RowRef(name, line), record))
        if out.__class__ is Item:
            item = out
            if digests is not None:
                item = item._replace(digests=digests(item, values))
            answers.append((item.user, serialised(item).wire, item.digests, item.operations))
        elif isinstance(out, RowFailure):
            answers.append(replace(out, record=None))
        else:
            answers.append(out)  # type: ignore[arg-type]
    return answers


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
            raise AbortError(
                f"a conversion worker process died ({exc}); `braze-import resume` goes on"
            ) from None
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

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
