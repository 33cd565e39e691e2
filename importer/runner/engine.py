"""The engine of one attempt: reader -> converter (here or in worker processes, importer.runner
.pool) -> --state -> packer -> batches, and every row accounted for as answers come back.

``importer.runner.drive`` runs it in the event loop; entry points (run, resume, retry) are in
``importer.runner.entry``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice

from importer.config import ImportConfig
from importer.convert import Converter
from importer.models import (
    ARRAYS,
    Batch,
    ImportStats,
    Item,
    RowConverter,
    RowFailure,
    RowSkipped,
    RowSource,
    SourceRow,
)
from importer.read import Block, Ranges, Source
from importer.rundir import Journal, RecordedOutcomes, utc_stamp
from importer.runner.pool import (
    CHUNK_ROWS,
    POOL_MIN_BYTES,
    Chunk,
    ConvertPool,
    RangeChunk,
    default_workers,
)
from importer.runner.worker import ConverterSpec, Outcome
from importer.send import BatchResult, Pacer, Sender, pack
from importer.state import DeliveryState, DeltaStage

log = logging.getLogger("importer")
FAILED_RATIO_MINIMUM = 1_000  # --max-failed-ratio judges only after this many outcomes


@dataclass(slots=True)
class Attempt:
    """Everything one attempt of a run needs, prepared before a byte is sent."""

    config: ImportConfig
    sources: list[RowSource]
    converters: list[RowConverter]
    # What earlier attempts settled (resume); empty for a new run.
    outcomes: RecordedOutcomes = field(default_factory=RecordedOutcomes)
    earlier_elapsed_s: float = 0.0
    state: DeliveryState | None = None  # --state: send only what changed
    # How worker processes rebuild ``converters`` (None: they cannot, e.g. a retry's).
    specs: list[ConverterSpec] | None = None
    # --state: how rows without an [operations] key name their operations (source name -> the
    # fingerprint run.json recorded); None: the mapping has no operations.
    operation_sources: dict[str, str] | None = None


class Engine:
    """The state of one attempt in its event loop."""

    def __init__(self, attempt: Attempt, journal: Journal) -> None:
        self.attempt = attempt
        self.config = attempt.config
        self.journal = journal
        sizes = [s.size for s in attempt.sources]
        total = None if None in sizes else sum(s or 0 for s in sizes)
        self.stats = ImportStats(bytes_total=total)
        self.stats.objects_sent = dict(attempt.outcomes.objects_sent)  # earlier attempts' too
        self.stats.failed_by_code = dict(attempt.outcomes.failed_by_code)
        self.stopping = False
        self.abort_reason: str | None = None
        self.sender: Sender | None = None
        self.pacer: Pacer | None = None
        self.delta = None
        if attempt.state is not None:
            attempt.state.operation_sources = attempt.operation_sources
            self.delta = DeltaStage(attempt.state, self._converted_again)
        else:  # the items go straight to the packer: their objects may come as its JSON
            for converter in attempt.converters:
                if isinstance(converter, Converter):
                    converter.to_wire()
        self.pool: ConvertPool | None = None
        workers = self.config.workers or default_workers()
        if workers > 1 and attempt.specs is not None and (total is None or total >= POOL_MIN_BYTES):
            digests = attempt.state.view() if attempt.state is not None else None
            self.pool = ConvertPool(workers, attempt.specs, digests)
            self.pool.start()
        self._chunks: deque[Chunk | RangeChunk] = deque()  # handed to the pool, not yet joined

    def request_stop(self) -> bool:
        """Stop reading and let the requests in flight finish; False when already stopping."""
        if self.stopping:
            return False
        self.stopping = True
        return True

    # -- accounting -------------------------------------------------------------------------
    def fail(self, failure: RowFailure) -> None:
        self.stats.failed += 1
        self.stats.fail_code(failure.error)
        self.journal.failure(failure)
        self._check_failed_ratio()

    def _check_failed_ratio(self) -> None:
        """--max-failed-ratio: a broken export must not burn the rate limit.

        Judged once 1,000 records have outcomes, as failed / rows read: rows still in flight
        count as read but not failed, since a row fails at conversion long before its
        neighbours are answered and failed / decided would overstate the share.
        """
        limit = self.config.max_failed_ratio
        if limit is None or self.abort_reason is not None:
            return
        stats = self.stats
        decided = stats.delivered + stats.failed + stats.skipped_total
        if decided >= FAILED_RATIO_MINIMUM and stats.failed > limit * stats.rows_read:
            self.abort_reason = (
                f"{stats.failed:,} of {stats.rows_read:,} records failed "
                f"({stats.failed / stats.rows_read:.1%} > --max-failed-ratio {limit:g}); "
                "fix the export or mapping, then resume (with a higher ratio if need be)"
            )
            self.stopping = True

    def on_result(self, result: BatchResult) -> None:
        answered_at = utc_stamp()
        if self.delta is not None:
            # The state before the journal: killed in between, resume re-reads these rows and
            # the state leaves them out; the other order would let a later night send them again.
            # The state records answers in batches (off the hot path) and calls back once
            # committed; until then these rows count as unsent.
            self.delta.answered(result, lambda: self._recorded(result, answered_at))
        else:
            self._recorded(result, answered_at)

    def flush_state(self) -> None:
        """Commit the confirmations the state has queued (and write their journal lines)."""
        if self.delta is not None:
            self.delta.flush()

    def _recorded(self, result: BatchResult, answered_at: str) -> None:
        self.journal.result(result, answered_at)  # writes the batch's failures first
        self.stats.delivered += len(result.delivered)
        self.stats.failed += len(result.failures)
        for failure in result.failures:
            self.stats.fail_code(failure.error)
        for array, count in result.accepted.items():
            self.stats.objects_sent[array] += count
        if result.failures:
            self._check_failed_ratio()
        log.debug(
            "batch %s: HTTP %s after %d attempt(s) in %.0f ms: %d delivered, %d failed",
            result.batch.label,
            result.status,
            result.attempts,
            result.latency_s * 1000,
            len(result.delivered),
            len(result.failures),
        )

    def dry_result(self, batch: Batch) -> None:
        if self.delta is not None:
            self.delta.unsent(batch.items())
        self.stats.requests += 1
        self.stats.delivered += batch.rows
        for array in ARRAYS:
            self.stats.objects_sent[array] += batch.count(array)

    # -- production -------------------------------------------------------------------------
    def _to_convert(self, source: RowSource) -> Iterator[SourceRow | RowFailure]:
        return self._unsettled(source.rows())

    def _unsettled(
        self, rows: Iterator[SourceRow | RowFailure]
    ) -> Iterator[SourceRow | RowFailure]:
        """The rows still to convert: counted as read; settled ones (resume) counted at once and
        left out."""
        outcome_of = self.attempt.outcomes.outcome if self.attempt.outcomes else None  # resume only
        for row in rows:
            if self.stopping:
                return
            self.stats.rows_read += 1
            done = outcome_of(row.ref.source, row.ref.line) if outcome_of else None
            if done == "delivered":
                self.stats.delivered += 1
            elif done == "failed":
                self.stats.failed += 1
            else:
                yield row

    def _converted(self) -> Iterator[Item | RowSkipped]:
        if self.pool is not None:
            yield from self._converted_by(self.pool)
            return
        for source, converter in zip(self.attempt.sources, self.attempt.converters, strict=True):
            yield from self._converted_here(self._to_convert(source), converter)

    def _converted_here(
        self, rows: Iterator[SourceRow | RowFailure], converter: RowConverter
    ) -> Iterator[Item | RowSkipped]:
        for row in rows:
            out = row if isinstance(row, RowFailure) else converter.convert(row)
            if isinstance(out, RowFailure):
                self.fail(out)
            else:
                yield out

    def _converted_by(self, pool: ConvertPool) -> Iterator[Item | RowSkipped]:
        """The same stream, converted in chunks by the pool and joined in reading order."""
        chunks = self._chunks
        for number, source in enumerate(self.attempt.sources):
            ranges = source.ranges(CHUNK_ROWS) if isinstance(source, Source) else None
            if ranges is not None:  # CSV: the workers parse it too
                yield from self._ranged(pool, number, ranges)
                if self.stopping:
                    return
                continue
            rows: list[SourceRow | RowFailure] = []
            for row in self._to_convert(source):
                rows.append(row)
                if len(rows) >= CHUNK_ROWS:
                    chunks.append(pool.chunk(number, rows, self._values_wanted()))
                    rows = []
                    while len(chunks) >= pool.depth:
                        yield from self._joined(chunks.popleft())
                        if self.stopping:
                            return
            if rows:
                chunks.append(pool.chunk(number, rows, self._values_wanted()))
        while chunks and not self.stopping:
            yield from self._joined(chunks.popleft())

    def _ranged(
        self, pool: ConvertPool, number: int, ranges: Ranges
    ) -> Iterator[Item | RowSkipped]:
        """A CSV source parsed and converted by the pool in ranges of its lines; the ranges
        are all joined before the next source starts (a dirty one needs the ones after it)."""
        chunks = self._chunks
        for block in ranges:
            if self.stopping:
                return
            settled = self._settled(ranges.layout.name, block)
            chunks.append(pool.range(number, ranges.layout, block, settled, self._values_wanted()))
            while len(chunks) >= pool.depth:
                if not (yield from self._joined_next(number, ranges)):
                    return
        while chunks:
            if not (yield from self._joined_next(number, ranges)):
                return
        failure = ranges.truncated()
        for row in self._unsettled(iter(() if failure is None else (failure,))):
            self.fail(row)  # type: ignore[arg-type]

    def _joined_next(self, number: int, ranges: Ranges) -> Generator[Item | RowSkipped, None, bool]:
        """Join the next chunk; False when the source is done with (stopping, or parsed again
        to its end in this process)."""
        chunk = self._chunks.popleft()
        if not isinstance(chunk, RangeChunk):
            yield from self._joined(chunk)
            return not self.stopping
        outcomes = chunk.joined(self.attempt.outcomes.outcome)
        if outcomes is not None:
            yield from self._counted(outcomes)
            return not self.stopping
        # Dirty: from this range on, parse and convert here, as a single process does.
        blocks = [chunk.text.block] + [c.text.block for c in self._chunks]  # type: ignore[union-attr]
        self._chunks.clear()
        rows = ranges.reparse(chain(blocks, ranges.rest()), blocks[0].first_line)
        yield from self._converted_here(self._unsettled(rows), self.attempt.converters[number])
        return False

    def _counted(self, outcomes: list[Outcome | str]) -> Iterator[Item | RowSkipped]:
        """A range's outcomes, counted as read; a settled row's (resume) as what it was."""
        stats = self.stats
        for out in outcomes:
            stats.rows_read += 1
            if out.__class__ is str:
                if out == "delivered":
                    stats.delivered += 1
                else:
                    stats.failed += 1
            elif isinstance(out, RowFailure):
                self.fail(out)
            else:
                yield out  # type: ignore[misc]

    def _settled(self, name: str, block: Block) -> frozenset[int]:
        """The lines of ``block`` an earlier attempt settled (resume): not to convert again."""
        outcomes = self.attempt.outcomes
        if not outcomes:
            return frozenset()
        first = block.first_line
        lines = range(first, first + len(block.lines))
        return frozenset(line for line in lines if outcomes.outcome(name, line) is not None)

    def _values_wanted(self) -> bool:
        """Whether the workers should hash every attribute value for --state, as it asks."""
        return self.delta is not None and self.delta.wants_values

    def _converted_again(self, item: Item) -> Item:
        """A row a worker answered with --state's verdict alone, converted here after all."""
        for source, converter in zip(self.attempt.sources, self.attempt.converters, strict=True):
            if source.name == item.ref.source:
                out = converter.convert(SourceRow(item.ref, item.record))
                if isinstance(out, Item):  # as the worker's conversion was
                    return out
        raise RuntimeError(f"{item.ref}: converted by a worker, but not here")

    def _joined(self, chunk: Chunk | RangeChunk) -> Iterator[Item | RowSkipped]:
        assert isinstance(chunk, Chunk)  # a source's ranges are joined before the next starts
        for out in chunk.joined():
            if isinstance(out, RowFailure):
                self.fail(out)
            else:
                yield out

    async def ready(self) -> None:
        """Wait, without holding up the event loop, for the rows the packer needs next."""
        for chunk in islice(self._chunks, 2):
            if not chunk.done():
                await chunk.wait()

    def items(self) -> Iterator[Item]:
        converted = self._converted()
        filtered = converted if self.delta is None else self.delta.filter(converted)
        for out in filtered:
            if isinstance(out, Item):
                yield out
            elif isinstance(out, RowFailure):  # a repeated [operations] key
                self.fail(out)
            else:
                self.stats.skip(out.reason)

    def batches(self) -> Iterator[Batch]:
        first = self.attempt.outcomes.last_batch + 1
        for out in pack(self.items(), self.config.limits, first_number=first):
            if isinstance(out, RowFailure):
                self.fail(out)
            else:
                yield out

    async def ready_batches(self) -> AsyncIterator[Batch]:
        """``batches()``, awaiting the conversion workers instead of blocking the event loop."""
        batches = self.batches()
        while True:
            await self.ready()
            batch = next(batches, None)
            if batch is None:
                return
            yield batch

    def refresh(self) -> None:
        self.stats.bytes_read = sum(s.bytes_read for s in self.attempt.sources)
        earlier = self.attempt.outcomes
        if self.sender is not None:
            counters = self.sender.counters
            self.stats.requests = earlier.requests + counters.requests
            self.stats.retries = earlier.retries + counters.retries
            self.stats.rate_limited = earlier.rate_limited + counters.rate_limited
            self.stats.ambiguous = earlier.ambiguous + counters.ambiguous
            self.stats.max_in_flight = counters.max_in_flight  # this attempt's
        if self.delta is not None:
            self.stats.attributes_unchanged = self.delta.counts.attributes_unchanged
            self.stats.events_already_sent = self.delta.counts.events_already_sent
        if self.pacer is not None:
            self.stats.rate_limit_wait_s = self.pacer.waited_s
            self.stats.waiting_until = self.pacer.long_wait_until
