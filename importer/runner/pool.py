"""Converting on every core: chunks of rows -> worker processes -> outcomes, in source order.

What costs CPU per row — parsing CSV, converting, checking Braze's rules, ``--state``'s hashing,
serialising the objects — runs in worker processes. The main process reads a CSV source's bytes
and hands over ranges of its raw lines (importer.read.csv_ranges): one bytes
object each, where handing over each row's cells cost it ~4 µs a row and the workers more
(a JSONL source is still read here, and handed over in chunks of ``CHUNK_ROWS`` records). It
gets back, per row, the line, the user and the objects already as JSON (``Item.wire``):
unpickling the dicts instead cost the main process ~8 µs per row, the bytes ~1.5 µs. The
answers are joined in reading order, so everything after this stage — per-user order, line numbers,
accounting, resume, retry, ``--state``, signals, ``--dry-run`` — sees the stream a single
process would have produced.

What a worker runs is in importer.runner.worker. Small inputs (under ``POOL_MIN_BYTES`` in all)
never pay for processes. Where it can, the pool
forks its workers — cheap, and nothing to import again — before the event loop starts, so they
hold no sockets; elsewhere it spawns them, and they rebuild the converters from
``ConverterSpec``s. Workers ignore SIGINT: a Ctrl-C is the main process's to handle (drain,
then stop).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing import get_all_start_methods, get_context
from typing import Any

from importer.models import CsvRecord, Item, RowFailure, RowRef, SourceRow
from importer.read import Block, CsvLayout, LineRecord, RangeText
from importer.runner.channels import Workers
from importer.runner.worker import (
    ConverterSpec,
    Digests,
    Outcome,
    configured,
    convert_chunk,
    convert_range,
    keep_freed_memory,
    run_worker,
)
from importer.runner.worker_pipes import Ticket

CHUNK_ROWS = 500  # rows per hand-over: ~10 ms of work, small enough to keep the order cheap
# Sources smaller than this are converted in the main process: starting processes costs more.
POOL_MIN_BYTES = 2_000_000
_new = tuple.__new__


def default_workers() -> int:
    """The cores this process may use (a process pinned to one core runs as a single one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- in the main process -------------------------------------------------------------------


class Chunk:
    """Rows handed over together (a reader's failures among them, passed through in place),
    and their outcomes once known."""

    __slots__ = ("answers", "outcomes", "rows")

    def __init__(self, rows: list[SourceRow | RowFailure]) -> None:
        self.rows = rows
        self.answers: Ticket | None = None
        self.outcomes: list[Outcome] | None = None  # converted in the main process

    def done(self) -> bool:
        return self.answers is None or self.answers.done()

    async def wait(self) -> None:
        if self.answers is not None:
            await self.answers.wait()

    def joined(self) -> list[Outcome]:
        if self.outcomes is not None:
            return self.outcomes
        assert self.answers is not None
        answers = iter(self.answers.result())  # a worker's death: AbortError
        outcomes: list[Outcome] = []
        for row in self.rows:
            if isinstance(row, RowFailure):
                outcomes.append(row)
                continue
            answer = next(answers)
            if answer.__class__ is tuple:
                user, wire, digests, key, row_key = answer
                item = (row.ref, row.record, user, (), (), (), digests, wire, key, row_key)
                outcomes.append(_new(Item, item))
            elif isinstance(answer, RowFailure):
                outcomes.append(replace(answer, record=row.record))
            else:
                outcomes.append(answer)
        return outcomes


class RangeChunk:
    """A range handed over, and its outcomes once known (None: dirty, parse it again)."""

    __slots__ = ("answers", "text")

    def __init__(self, text: RangeText, answers: Ticket) -> None:
        self.text = text
        self.answers = answers

    def done(self) -> bool:
        return self.answers.done()

    async def wait(self) -> None:
        await self.answers.wait()

    def joined(self, outcome: Callable[[str, int], str | None]) -> list[Outcome | str] | None:
        """The outcomes in order, a settled row's as its recorded outcome (``outcome``)."""
        dirty, lines, users, answers = self.answers.result()  # a worker's death: AbortError
        if dirty:
            return None
        text = self.text
        name = text.layout.name
        outcomes: list[Outcome | str] = []
        append = outcomes.append
        for line, user, answer in zip(lines, users, answers, strict=True):
            if user is not None:  # an item told by its user and wire alone
                # tuple.__new__: what Item(...) and RowRef(...) make, without their generated
                # __new__'s Python frames (~1 K instructions a row)
                ref = _new(RowRef, (name, line))
                record = LineRecord(text, line)
                append(_new(Item, (ref, record, user, (), (), (), None, answer, None, None)))
            elif answer.__class__ is tuple:
                user, wire, digests, key, row_key = answer
                ref = _new(RowRef, (name, line))
                record = LineRecord(text, line)
                append(_new(Item, (ref, record, user, (), (), (), digests, wire, key, row_key)))
            elif answer is None:
                append(outcome(name, line) or "")
            elif isinstance(answer, RowFailure) and answer.stage != "read":
                append(replace(answer, record=LineRecord(text, line)))
            else:
                append(answer)
        return outcomes


def pooled(workers: int, total: int | None) -> bool:
    """Are sources of ``total`` bytes (None: unknown) converted by ``workers`` processes?"""
    return workers > 1 and (total is None or total >= POOL_MIN_BYTES)


class ConvertPool:
    """Worker processes converting chunks of one attempt's sources.

    Started before the sources are opened where the caller can (``started``, from
    importer.runner.entry): a fork gives each worker every page the main process holds then,
    and an opened source holds its first block read and decoded (~1.2 MB of a CSV file), its
    state and run directory a few more; the workers counted them all in their own resident
    sets. The converters follow once the sources are open (``configure``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._digests: Digests | None = None
        self._workers: Workers | None = None

    @classmethod
    def started(cls, workers: int | None, total: int | None) -> ConvertPool | None:
        """A running pool for an attempt with this ``--workers`` over ``total`` bytes, when
        the engine will convert in one (``pooled``); None otherwise."""
        count = workers or default_workers()
        if not pooled(count, total):
            return None
        pool = cls(count)
        pool.start()
        return pool

    @property
    def depth(self) -> int:
        """Chunks handed over and not yet joined: enough to keep every worker busy.

        The next chunk goes out only once the oldest is joined, so a worker whose chunks came
        back first waits on the others'; at 2 a worker each one waited ~200 times in a 300,000-row
        wide --dry-run. 4 a worker, on a quiet 2-core machine (5 alternated runs, medians):
        3.72 -> 3.39 s, the tree's peak resident set +2 MB; 3 a worker 3.43 s, 6 3.39 s.

        With --state, 2 a worker: its answers carry digests, and the deeper queue let the
        sender fill more requests, each holding its rows' digests until answered (the ceiling
        with a fresh state file: tree peak 262.3 MB at 2 a worker, 275.6 at 4, over the
        150 + 60 a worker the issue allows)."""
        return (4 if self._digests is None else 2) * self.workers + 1

    def start(self) -> None:
        """Start the processes: before the event loop and its sockets exist, as a fork copies
        what the process holds (the workers never touch it)."""
        methods = get_all_start_methods()
        context = get_context("fork" if "fork" in methods else "spawn")
        self._workers = Workers(self.workers, context, run_worker, (os.getpid(),))
        keep_freed_memory()  # this process takes the answers in, as large and as often

    def configure(self, specs: Sequence[ConverterSpec], digests: Digests | None = None) -> None:
        """What every worker converts: each source's converter, and --state's view."""
        if self._workers is None:
            raise RuntimeError("a conversion pool configured before it started")
        self._digests = digests
        self._workers.each(configured, tuple(specs), digests)  # each worker's first task

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
        if self._workers is None:  # never silently drop rows
            raise RuntimeError("rows handed to a conversion pool that is not running")
        name = rows[0].ref.source
        answers = self._workers.submit(
            convert_chunk,
            source,
            name,
            header,
            payload,
            values,
            weight=len(payload),
            plain=self._digests is None,
        )
        chunk.answers = answers
        return chunk

    def range(
        self, source: int, layout: CsvLayout, block: Block, settled: frozenset[int], values: bool
    ) -> RangeChunk:
        """Hand a range of source ``source``'s raw lines over to be parsed and converted."""
        if self._workers is None:
            raise RuntimeError("rows handed to a conversion pool that is not running")
        data = b"".join(block.lines)
        args = (source, layout, block.first_line, data, block.issues, settled, values)
        answers = self._workers.submit(
            convert_range, *args, weight=len(block.lines), plain=self._digests is None
        )
        return RangeChunk(RangeText(layout, block), answers)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None
