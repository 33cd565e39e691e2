"""Converting in this process: an attempt's rows one by one (``--workers 1``, small inputs,
a range the workers could not parse), with ``--state``'s row keys a chunk at a time, and a row a
worker answered by a verdict alone converted here after all. The engine
(``importer.runner.engine``) is built on it and adds the pool's path, ``--state`` and packing.
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import blake2b
from itertools import islice

from importer.models import (
    CsvRecord,
    Item,
    RowConverter,
    RowFailure,
    RowSkipped,
    RowSource,
    SourceRow,
)
from importer.rundir import Journal
from importer.runner.accounting import Accounting
from importer.runner.attempt import Attempt
from importer.runner.pool import CHUNK_ROWS
from importer.state import StateView, converted


class InProcess(Accounting):
    """An attempt's counts (``Accounting``) and its rows converted in this process."""

    def __init__(self, attempt: Attempt, journal: Journal) -> None:
        super().__init__(attempt, journal)
        self._view: StateView | None = None  # see ``open_view``
        self._hashers: dict[tuple[int, tuple[str, ...] | None], blake2b] = {}

    def open_view(self) -> None:
        """--state in this process: the state as a worker reads it, to know rows by their keys
        (importer.state.row_keys); the specs name what decides a row's key. Opened once any
        worker is forked: a SQLite connection must not cross a fork."""
        attempt = self.attempt
        if attempt.state is not None and attempt.specs is not None:
            self._view = attempt.state.view()

    def close_view(self) -> None:
        if self._view is not None:
            self._view.close()

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

    def _converted_each(self) -> Iterator[Item | RowSkipped]:
        for number, source in enumerate(self.attempt.sources):
            yield from self._converted_here(self._to_convert(source), number)

    def _converted_here(
        self, rows: Iterator[SourceRow | RowFailure], number: int
    ) -> Iterator[Item | RowSkipped]:
        converter = self.attempt.converters[number]
        if self._view is not None:  # --state: rows it remembers are not converted
            yield from self._recognised_here(rows, number, converter)
            return
        for row in rows:
            out = row if isinstance(row, RowFailure) else converter.convert(row)
            if isinstance(out, RowFailure):
                self.fail(out)
            else:
                yield out

    def _recognised_here(
        self, rows: Iterator[SourceRow | RowFailure], number: int, converter: RowConverter
    ) -> Iterator[Item | RowSkipped]:
        """``_converted_here`` with --state, a chunk of rows at a time as a worker converts
        them (importer.state.row_keys.converted): one look-up for the chunk's row keys."""
        assert self._view is not None and self.attempt.specs is not None
        spec, hashers = self.attempt.specs[number], self._hashers
        while chunk := list(islice(rows, CHUNK_ROWS)):
            read = [row for row in chunk if isinstance(row, SourceRow)]
            header = (
                read[0].record.header if read and isinstance(read[0].record, CsvRecord) else None
            )
            if header is not None and _mixed(read, header):  # keyed by one header: none
                made = iter([converter.convert(row) for row in read])
            else:
                hasher = hashers.get((number, header))
                if hasher is None:
                    hasher = hashers[number, header] = spec.salt(header)
                made = iter(converted(read, hasher, self._view.recognise, converter.convert))
            for row in chunk:
                out = row if isinstance(row, RowFailure) else next(made)
                if isinstance(out, RowFailure):
                    self.fail(out)
                else:
                    yield out

    def _converted_again(self, item: Item) -> Item:
        """A row a worker answered with --state's verdict alone, converted here after all."""
        for source, converter in zip(self.attempt.sources, self.attempt.converters, strict=True):
            if source.name == item.ref.source:
                out = converter.convert(SourceRow(item.ref, item.record))
                if isinstance(out, Item):  # as the worker's conversion was
                    return out
        raise RuntimeError(f"{item.ref}: converted by a worker, but not here")


def _mixed(rows: list[SourceRow], header: tuple[str, ...]) -> bool:
    """Do the chunk's CSV rows come under more than one header (the converter allows a source's
    header to change)? A row key salted by another row's header could name another object."""
    return any(getattr(row.record, "header", None) is not header for row in rows)
