"""An attempt prepared by ``importer.runner.entry`` (run, resume or retry), run to its
``RunReport``: the engine in its event loop (``importer.runner.drive``), under the signals when
asked, with few garbage collections; then the ending written (``summary.json``, run.json's
attempts and status) and, with --state, the run recorded in the state file.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from importer.errors import StorageError
from importer.filelock import utc_now
from importer.models import ImportStats
from importer.rundir import Journal
from importer.runner.attempt import Attempt
from importer.runner.drive import final_status, loop_runner, run_engine
from importer.runner.engine import Engine
from importer.runner.report import Reporter, RunReport
from importer.runner.signals import StopSignals


def execute_attempt(
    attempt: Attempt,
    journal: Journal,
    manifest: dict[str, Any],
    reporter: Reporter | None,
    handle_signals: bool,
) -> RunReport:
    """Run ``attempt`` to its report: summary.json and run.json's ending written, and with
    --state the run recorded in the state file."""
    with StopSignals() if handle_signals else contextlib.nullcontext() as signals:
        report = _run_attempt(attempt, journal, manifest, reporter, signals)
        if attempt.state is not None:
            attempt.state.record_run(str(journal.run_dir), report.stats.as_summary())
        return report


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Rows are short-lived and acyclic: the default GC thresholds spent ~20% of a run walking
    young objects. Freeze what exists at the start and collect far less often meanwhile."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _run_attempt(
    attempt: Attempt,
    journal: Journal,
    manifest: dict[str, Any],
    reporter: Reporter | None,
    signals: StopSignals | None,
) -> RunReport:
    engine = Engine(attempt, journal)
    if reporter is not None:
        reporter.started(journal.run_dir, engine.stats)
    started_at = utc_now()
    with loop_runner() as runner, _few_collections():
        abort = runner.run(run_engine(engine, reporter, signals))
    status, exit_code = final_status(engine, abort)
    try:
        _write_ending(engine.stats, status, started_at, journal, manifest)
    except StorageError as exc:  # the disk that stopped the run (or filled up just now)
        abort = abort or str(exc)
        status, exit_code = final_status(engine, abort)
        engine.stats.status = status
    stats = engine.stats
    if reporter is not None:
        reporter.progress(stats)
    return RunReport(stats=stats, run_dir=journal.run_dir, exit_code=exit_code, error=abort)


def _write_ending(
    stats: ImportStats, status: str, started_at: str, journal: Journal, manifest: dict[str, Any]
) -> None:
    stats.status = status
    summary = stats.as_summary()
    unsent = stats.rows_read - stats.delivered - stats.failed - stats.skipped_total
    if unsent or status in ("interrupted", "aborted"):
        summary["unsent"] = unsent  # resume sends these
    journal.write_json("summary.json", summary)
    ended = {"started_at": started_at, "ended_at": utc_now(), "status": status}
    manifest["attempts"] = [*manifest.get("attempts", []), ended]
    manifest |= {"status": status, "ended_at": ended["ended_at"], "elapsed_s": stats.elapsed_s}
    journal.write_json("run.json", manifest)
