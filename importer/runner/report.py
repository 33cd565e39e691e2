"""What a run reports: progress while it runs (``Reporter``), and its end (``RunReport``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from importer.models import ImportStats


class Reporter(Protocol):
    """How the library reports progress; the CLI draws it (tqdm or log lines)."""

    def started(self, run_dir: Path, stats: ImportStats) -> None: ...
    def progress(self, stats: ImportStats) -> None: ...


@dataclass(frozen=True, slots=True)
class RunReport:
    """The end of one attempt: its counters, where its logs are, and the exit code."""

    stats: ImportStats
    run_dir: Path
    exit_code: int
    error: str | None = None  # why the run aborted, when it did
