"""The engine of one attempt: reader -> converter (here or in worker processes, importer.runner
.pool) -> --state -> packer -> batches, and every row accounted for as answers come back.

``importer.runner.drive`` runs it in the event loop; entry points (run, resume, retry) are in
``importer.runner.entry``; what an attempt is given is ``importer.runner.attempt``, and what it
counts as rows fail and batches are answered, ``importer.runner.accounting``; how rows are
converted in this process, ``importer.runner.in_process`` (the engine's base, on the former).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from itertools import chain, islice

from importer.models import (
    Batch,
    Item,
    RowFailure,
    RowSkipped,
    SourceRow,
)
from importer.read import Block, Ranges, Source
from importer.rundir import Journal
from importer.runner.attempt import Attempt
from importer.runner.in_process import InProcess
from importer.runner.pool import (
    CHUNK_ROWS,
    Chunk,
    ConvertPool,
    RangeChunk,
    default_workers,
    pooled,
)
from importer.runner.worker import Outcome
from importer.send import pack
from importer.state import DeltaStage

# A chunk's outcomes in reading order (a settled row's: "delivered" or "failed"), and whether
# they are still to count as read (``Engine._pooled``).
_Outcomes = tuple[Sequence[Outcome | str], bool]


class Engine(InProcess):
    """The state of one attempt in its event loop: its rows' way from the sources to batches."""

    def __init__(self, attempt: Attempt, journal: Journal) -> None:
        super().__init__(attempt, journal)
        if attempt.state is not None:
            attempt.state.operation_sources = attempt.operation_sources
            self.delta = DeltaStage(attempt.state, self._converted_again)
        self.pool: ConvertPool | None = None
        workers = self.config.workers or default_workers()
        pool = attempt.pool  # started before the sources were opened, if it could be
        if pooled(workers, self.stats.bytes_total) and attempt.specs is not None:
            if pool is None:
                pool = ConvertPool(workers)
                pool.start()
            digests = attempt.state.view() if attempt.state is not None else None
            pool.configure(attempt.specs, digests)
            self.pool = pool
        elif pool is not None:  # the sources turned out smaller than their sizes said
            pool.close()
        self._chunks: deque[Chunk | RangeChunk] = deque()  # handed to the pool, not yet joined
        self.open_view()

    def close(self) -> None:
        """Stop the conversion workers and close what this engine opened."""
        if self.pool is not None:
            self.pool.close()
        self.close_view()

    def request_stop(self) -> bool:
        """Stop reading and let the requests in flight finish; False when already stopping."""
        if self.stopping:
            return False
        self.stopping = True
        return True

    def _converted(self) -> Iterator[Item | RowSkipped]:
        if self.pool is not None:
            return self._pooled(self.pool)
        return self._converted_each()

    def _pooled(self, pool: ConvertPool) -> Iterator[Item | RowSkipped]:
        """The same stream, converted in chunks by the pool and joined in reading order: a
        range's rows counted as read here (a settled row's as what it was), failures recorded.
        The levels below hand up whole lists (``_outcome_lists``): a row yielded up through
        each generator level cost ~250 instructions a level, five levels a wide row."""
        stats = self.stats
        for outcomes, read in self._outcome_lists(pool):
            for out in outcomes:
                if read:
                    stats.rows_read += 1
                    if out.__class__ is str:
                        if out == "delivered":
                            stats.delivered += 1
                        else:
                            stats.failed += 1
                        continue
                # An item first: isinstance costs a look-up of ``__class__`` when it is False
                if out.__class__ is not Item and isinstance(out, RowFailure):
                    self.fail(out)
                else:
                    yield out  # type: ignore[misc]

    def _outcome_lists(self, pool: ConvertPool) -> Iterator[_Outcomes]:
        """Each chunk's outcomes in reading order, and whether they are still to count as read
        (a range's: its rows were not read one by one here)."""
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
                        yield _joined(chunks.popleft()), False
                        if self.stopping:
                            return
            if rows:
                chunks.append(pool.chunk(number, rows, self._values_wanted()))
        while chunks and not self.stopping:
            yield _joined(chunks.popleft()), False

    def _ranged(self, pool: ConvertPool, number: int, ranges: Ranges) -> Iterator[_Outcomes]:
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

    def _joined_next(self, number: int, ranges: Ranges) -> Generator[_Outcomes, None, bool]:
        """Join the next chunk; False when the source is done with (stopping, or parsed again
        to its end in this process)."""
        chunk = self._chunks.popleft()
        if not isinstance(chunk, RangeChunk):
            yield _joined(chunk), False
            return not self.stopping
        outcomes = chunk.joined(self.attempt.outcomes.outcome)
        if outcomes is not None:
            yield outcomes, True
            return not self.stopping
        # Dirty: from this range on, parse and convert here, as a single process does.
        blocks = [chunk.text.block] + [c.text.block for c in self._chunks]  # type: ignore[union-attr]
        self._chunks.clear()
        rows = ranges.reparse(chain(blocks, ranges.rest()), blocks[0].first_line)
        for out in self._converted_here(self._unsettled(rows), number):
            yield (out,), False  # counted as read by ``_unsettled``
        return False

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


def _joined(chunk: Chunk | RangeChunk) -> list[Outcome]:
    assert isinstance(chunk, Chunk)  # a source's ranges are joined before the next starts
    return chunk.joined()
