"""A run's counters for node_exporter's textfile collector, written by ``prometheus_client``.

The client library owns the exposition format: HELP and TYPE lines, label escaping, and values
rendered as Go's ``strconv`` does — the shortest text that reads back as the same float, so
12,345,678 is ``1.2345678e+07`` (exact) and an epoch timestamp keeps its milliseconds.
``write_to_textfile`` writes a temporary file beside the target and renames it over, so the
collector never reads half a file. Every value is the last run's (a gauge): a counter would
claim to grow across nights, and each night's file replaces the last.

The file is written on every exit, failures before the start included, so yesterday's
``exit_code 0`` never outlives a broken night. ``last_success_timestamp_seconds`` is carried
over from the previous file when this run did not succeed, for "no success in 25 h" alerts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from importer.errors import ConfigError, StorageError
from importer.models import ImportStats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

PREFIX = "braze_import_"
LAST_SUCCESS = f"{PREFIX}last_success_timestamp_seconds"
EXTRA_HINT = "--metrics-file needs the Prometheus client: pip install 'braze-importer[metrics]'"

# name, ImportStats attribute, help. Counts carry what they count as their unit.
_COUNTS = (
    ("read_rows", "rows_read", "Rows read from the sources."),
    ("delivered_records", "delivered", "Records Braze accepted."),
    ("failed_records", "failed", "Records that failed (failures.jsonl)."),
    ("sent_requests", "requests", "Requests sent, retries included."),
    ("retried_requests", "retries", "Requests sent again."),
    ("rate_limited_requests", "rate_limited", "Requests answered 429."),
    ("ambiguous_requests", "ambiguous", "Requests that timed out after sending."),
    ("unchanged_attributes", "attributes_unchanged", "--state: attribute values left out."),
    ("already_sent_objects", "events_already_sent", "--state: events/purchases left out."),
    ("read_bytes", "bytes_read", "Bytes read from the sources."),
)


def check_available() -> None:
    """Fail before the run (exit 2) when the extra is not installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the metrics say about one invocation, whether or not a run happened."""

    stats: ImportStats
    exit_code: int
    succeeded: bool  # the run finished (exit 0 or 1): every row has an outcome
    ended_at: float  # epoch seconds


def _families(outcome: RunOutcome, last_success: float | None) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    stats = outcome.stats
    for name, attribute, help_text in _COUNTS:
        yield GaugeMetricFamily(PREFIX + name, help_text, value=getattr(stats, attribute))
    unsent = stats.rows_read - stats.delivered - stats.failed - stats.skipped_total
    yield GaugeMetricFamily(
        PREFIX + "unsent_records", "Rows read without an outcome (resume sends them).", unsent
    )
    skipped = GaugeMetricFamily(
        PREFIX + "skipped_records", "Records skipped, by reason.", labels=["reason"]
    )
    for reason, count in sorted(stats.skipped.items()):
        skipped.add_metric([reason], count)
    yield skipped
    accepted = GaugeMetricFamily(
        PREFIX + "accepted_objects", "Objects Braze accepted, by kind.", labels=["kind"]
    )
    for kind, count in stats.objects_sent.items():
        accepted.add_metric([kind], count)
    yield accepted
    yield GaugeMetricFamily(PREFIX + "duration_seconds", "Duration of the run.", stats.elapsed_s)
    yield GaugeMetricFamily(
        PREFIX + "rate_limit_wait_seconds",
        "Time every worker waited on the server's rate limit.",
        stats.rate_limit_wait_s,
    )
    yield GaugeMetricFamily(
        PREFIX + "exit_code",
        "Exit code: 0 ok, 1 some records failed, 2 fix the input, 3 aborted, 70 bug, "
        "75 busy (try later), 130 stopped.",
        outcome.exit_code,
    )
    yield GaugeMetricFamily(
        PREFIX + "last_run_timestamp_seconds", "When the run ended (epoch).", outcome.ended_at
    )
    if last_success is not None:
        yield GaugeMetricFamily(
            LAST_SUCCESS, "When a run last finished with exit 0 or 1 (epoch).", last_success
        )


class _Snapshot:
    """A collector over one finished run (the registry asks it once, when writing)."""

    def __init__(self, outcome: RunOutcome, last_success: float | None) -> None:
        self._outcome = outcome
        self._last_success = last_success

    def collect(self) -> Iterator[Metric]:
        return _families(self._outcome, self._last_success)


def previous_last_success(path: Path) -> float | None:
    """The last success the file at ``path`` records; None when it has none or is unreadable."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # a missing or foreign file: no success known
    return None


def write_metrics(path: Path, outcome: RunOutcome) -> None:
    """Replace ``path`` atomically with the metrics of ``outcome``."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    last_success = outcome.ended_at if outcome.succeeded else previous_last_success(path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(outcome, last_success))
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise StorageError(
            f"cannot write the metrics file {path}: {exc.strerror}; "
            "check the directory exists and has free space"
        ) from None


def outcome_now(stats: ImportStats, exit_code: int, succeeded: bool) -> RunOutcome:
    return RunOutcome(stats=stats, exit_code=exit_code, succeeded=succeeded, ended_at=time.time())
