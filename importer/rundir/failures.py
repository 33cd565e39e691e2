"""``retry``: a parent run's failures.jsonl as the source of a new run.

Each failed record is converted again from the row as read, so a corrected mapping applies, and
keeps its original source and line. A record Braze partly accepted is narrowed to the objects
it refused, so a retry never duplicates what was delivered. A record that failed while reading
(no row to convert) fails again with its original code: fix the file and run it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from importer.convert import Converter
from importer.errors import ConfigError
from importer.mapping import CompiledMapping, default_mapping
from importer.models import Item, RowFailure, RowRef, RowSkipped, SourceRow, record_dict
from importer.rundir.outcomes import read_jsonl


class FailureSource:
    """Rows to retry from ``failures.jsonl``; ``only`` keeps those failure codes."""

    format = "failures"
    header: tuple[str, ...] | None = None

    def __init__(self, path: Path, only: Sequence[str] = ()) -> None:
        self.name = str(path)
        self.path = path
        self.size: int | None = path.stat().st_size if path.exists() else 0
        self._only = frozenset(only)
        self._read = 0
        # Partial refusals: which of the row's objects Braze refused, by array.
        self.refused: dict[RowRef, dict[str, list[int]]] = {}

    @property
    def bytes_read(self) -> int:
        return self._read

    def rows(self) -> Iterator[SourceRow | RowFailure]:
        for failure in read_jsonl(self.path):
            self._read += 1
            if self._only and failure.get("error") not in self._only:
                continue
            row = self._row(failure)
            if row is not None:
                yield row
        self._read = self.size or 0

    def _row(self, failure: dict[str, Any]) -> SourceRow | RowFailure | None:
        source, line = failure.get("source"), failure.get("line")
        if not isinstance(source, str) or not isinstance(line, int):
            return None
        ref = RowRef(source, line)
        record = failure.get("record")
        if not isinstance(record, dict):
            return RowFailure(
                ref=ref,
                stage="read",
                error=str(failure.get("error", "unreadable")),
                message=f"{failure.get('message', '')} (read failure: fix the file, run it again)",
                record=record,
            )
        refused = failure.get("refused")
        if isinstance(refused, dict):
            self.refused[ref] = {a: list(p) for a, p in refused.items() if isinstance(p, list)}
        return SourceRow(ref, record)

    def close(self) -> None:
        pass


class RetryConverter:
    """Converts retried rows: with the mapping given, or per-record defaults (no mapping)."""

    def __init__(
        self, source: FailureSource, mapping: CompiledMapping | None, formats: dict[str, str]
    ):
        self._source = source
        self._mapping = mapping
        self._formats = formats  # parent source name -> csv | jsonl
        self._converters: dict[tuple[str, ...] | None, Converter] = {}

    def _converter(self, row: SourceRow) -> Converter:
        if self._mapping is not None:
            key: tuple[str, ...] | None = ()
            mapping = self._mapping
        else:
            is_csv = self._formats.get(row.ref.source, "csv") == "csv"
            key = tuple(record_dict(row.record)) if is_csv else None
            mapping = None
        converter = self._converters.get(key)
        if converter is None:
            converter = Converter(mapping or default_mapping(key, row.ref.source))
            self._converters[key] = converter
        return converter

    def convert(self, row: SourceRow) -> Item | RowFailure | RowSkipped:
        out = self._converter(row).convert(row)
        refused = self._source.refused.get(row.ref)
        if refused is None or not isinstance(out, Item):
            return out
        narrowed = out.narrowed(refused)
        return narrowed if narrowed is not None else RowSkipped(row.ref, "nothing_refused")


def parent_failures(parent: Path) -> Path:
    path = parent / "failures.jsonl"
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{parent} has no readable failures.jsonl")
    return path
