"""What one attempt has counted (``ImportStats``): rows failed, batches answered by Braze (or
packed by a dry run), the sender's and the pacer's counters; --max-failed-ratio judged as
failures come. The engine (``importer.runner.engine``) is built on it and adds the rows' way
from the sources to the batches.
"""

from __future__ import annotations

import logging

from importer.models import ARRAYS, Batch, ImportStats, RowFailure
from importer.rundir import Journal, utc_stamp
from importer.runner.attempt import Attempt
from importer.send import BatchResult, Pacer, Sender
from importer.state import DeltaStage

log = logging.getLogger("importer")
FAILED_RATIO_MINIMUM = 1_000  # --max-failed-ratio judges only after this many outcomes


class Accounting:
    """An attempt's counts, kept as its rows fail and its batches are answered."""

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
        self.delta: DeltaStage | None = None  # --state: set by the engine

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
