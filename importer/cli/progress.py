"""How the CLI shows a run: a tqdm bar on a terminal, a log line every 10 s without one (or with
``--log-format json``: one JSON object per line, importer.cli.logs).

Only the CLI imports this module (the library knows just the ``Reporter`` protocol).
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from importer.cli.logs import LogLines
from importer.errors import EXIT_MEANINGS
from importer.models import ImportStats

if TYPE_CHECKING:  # imported when a bar is shown: tqdm imports importlib.metadata (with the
    from tqdm import tqdm  # client's version, ~48 M instructions of every run's start)

LOG_EVERY_S = 10.0


def _rates(stats: ImportStats) -> tuple[float, float]:
    elapsed = max(stats.elapsed_s, 1e-9)
    return stats.rows_read / elapsed, stats.requests / elapsed


def _waiting(stats: ImportStats) -> str:
    if stats.waiting_until is None:
        return ""
    until = datetime.fromtimestamp(stats.waiting_until).strftime("%H:%M:%S")
    return f", rate limit spent: waiting until {until} as the server asked"


def status_line(stats: ImportStats) -> str:
    rows_s, requests_s = _rates(stats)
    return (
        f"{stats.rows_read:,} rows read ({rows_s:,.0f}/s), {stats.requests:,} requests "
        f"({requests_s:,.0f}/s), {stats.delivered:,} delivered, {stats.failed:,} failed, "
        f"{stats.retries:,} retries" + _waiting(stats)
    )


class BarReporter:
    """tqdm on stderr, measured in bytes read of the total (no pre-scan)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._bar: tqdm[Any] | None = None

    def started(self, run_dir: Path, stats: ImportStats) -> None:
        from tqdm import tqdm

        click.echo(f"run directory: {run_dir}", err=True)
        self._bar = tqdm(
            total=stats.bytes_total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self._stream,
            dynamic_ncols=True,
        )

    def progress(self, stats: ImportStats) -> None:
        if self._bar is None:
            return
        self._bar.update(stats.bytes_read - self._bar.n)
        rows_s, requests_s = _rates(stats)
        self._bar.set_postfix_str(
            f"{rows_s:,.0f} rows/s {requests_s:,.0f} req/s ok {stats.delivered:,} "
            f"failed {stats.failed:,} retries {stats.retries:,}" + _waiting(stats),
            refresh=False,
        )
        if stats.status != "running":
            self._bar.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class LogReporter:
    """No terminal (cron) or ``--log-format json``: one line on stderr every 10 seconds."""

    def __init__(self, lines: LogLines) -> None:
        self._lines = lines
        self._last = 0.0
        self._waiting_until: float | None = None

    def started(self, run_dir: Path, stats: ImportStats) -> None:
        self._lines.emit(f"run directory: {run_dir}", run_dir=str(run_dir))
        self._last = time.monotonic()

    def progress(self, stats: ImportStats) -> None:
        now = time.monotonic()
        waiting_changed = stats.waiting_until != self._waiting_until
        self._waiting_until = stats.waiting_until
        if now - self._last >= LOG_EVERY_S or (waiting_changed and stats.waiting_until):
            self._last = now
            self._lines.emit(
                status_line(stats),
                rows_read=stats.rows_read,
                delivered=stats.delivered,
                failed=stats.failed,
                skipped=stats.skipped_total,
                requests=stats.requests,
                retries=stats.retries,
                bytes_read=stats.bytes_read,
                bytes_total=stats.bytes_total,
                waiting_until=stats.waiting_until,
            )

    def close(self) -> None:
        pass


class QuietReporter:
    def started(self, run_dir: Path, stats: ImportStats) -> None:
        pass

    def progress(self, stats: ImportStats) -> None:
        pass

    def close(self) -> None:
        pass


def make_reporter(quiet: bool, lines: LogLines) -> BarReporter | LogReporter | QuietReporter:
    if quiet:
        return QuietReporter()
    if sys.stderr.isatty() and not lines.json:
        return BarReporter()
    return LogReporter(lines)


TOP_CODES = 3  # failure codes the text summary names with their retry command


def _failure_lines(stats: ImportStats, run_dir: Path) -> list[str]:
    """The commonest failure codes, each with the command that retries just those records."""
    top = sorted(stats.failed_by_code.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_CODES]
    lines = []
    for code, count in top:
        command = f"braze-import retry {shlex.quote(str(run_dir))} --only {shlex.quote(code)}"
        lines.append(f"  {count:,} {code}: {command}")
    others = len(stats.failed_by_code) - len(top)
    if others > 0:
        lines.append(f"  and {others} other code(s): see summary.json failed_by_code")
    return ["failed by code:", *lines] if lines else []


def summary_text(stats: ImportStats, run_dir: Path, exit_code: int) -> str:
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in sorted(stats.skipped.items()))
    sent = stats.objects_sent
    lines = [
        f"status: {stats.status} ({stats.elapsed_s:,.1f} s)",
        f"rows read: {stats.rows_read:,} = delivered {stats.delivered:,} + failed "
        f"{stats.failed:,} + skipped {stats.skipped_total:,}"
        + (f" ({skipped})" if skipped else ""),
        f"objects sent: {sent['attributes']:,} attributes, {sent['events']:,} events, "
        f"{sent['purchases']:,} purchases in {stats.requests:,} requests "
        f"({stats.retries:,} retries, {stats.ambiguous:,} ambiguous)",
        f"rate: {stats.requests / max(stats.elapsed_s, 1e-9):,.0f} requests/s achieved "
        f"(at most {stats.max_in_flight:,} in flight), "
        f"{stats.rate_limited:,} answered 429, {stats.rate_limit_wait_s:,.1f} s waiting on the "
        "rate limit",
        *_failure_lines(stats, run_dir),
        f"run directory: {run_dir}",
        f"exit {exit_code}: {EXIT_MEANINGS.get(exit_code, '')}",
    ]
    unsent = stats.rows_read - stats.delivered - stats.failed - stats.skipped_total
    if unsent:
        lines.insert(2, f"not sent: {unsent:,} rows had no answer when the run stopped")
    return "\n".join(lines)
