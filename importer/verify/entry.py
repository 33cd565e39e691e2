"""``verify_run``: read a run's sources again, ask Braze for a sample of its users, compare.

Steps: check the run directory (locked while we read it; a run still going is refused, exit
2) and that its sources and mapping are unchanged (exit 2, as ``resume``); feed every delivered
row to a ``Sample`` (importer.verify.expected); ask the export for the chosen users
(importer.verify.fetch); compare (importer.verify.compare); ask once more, after ``settle_s``,
for the users that did not match (a profile may lag its import: docs/braze.md, Consistency and
ordering); write verify.jsonl and verify.json (importer.verify.report).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from importer.config import RetryPolicy
from importer.errors import ConfigError
from importer.filelock import FileLock, Holder
from importer.models import BrazeObject, Item, RowConverter, RowFailure, RowSource
from importer.rules import ATTRIBUTE_FIELDS, EXPORTED_STANDARD
from importer.rundir import (
    check_mapping,
    close_all,
    config_from,
    read_jsonl,
    read_manifest,
    read_outcomes,
    reopen_files,
    reopen_retry,
)
from importer.verify.compare import Comparer, Mismatch
from importer.verify.expected import Expected, Sample
from importer.verify.fetch import ExportRounds, Found
from importer.verify.report import VerifyReport, VerifyReporter, write_results

DEFAULT_SAMPLE = 1_000
DEFAULT_RATE = 250  # requests per minute: Braze's export limit for newer workspaces
DEFAULT_SETTLE_S = 60.0
_PROGRESS_EVERY = 10_000  # rows read between progress reports


Refusals = dict[tuple[str, int], dict[str, list[int]]]


def _partly_delivered(run_dir: Path) -> tuple[Refusals, set[tuple[str, int]]]:
    """From failures.jsonl: rows of which Braze refused only some objects (the positions), and
    rows that may or may not have landed (ambiguous)."""
    refused: Refusals = {}
    ambiguous: set[tuple[str, int]] = set()
    for line in read_jsonl(run_dir / "failures.jsonl"):
        key = (str(line.get("source")), int(line.get("line") or 0))
        if line.get("error") == "ambiguous":
            ambiguous.add(key)
        elif line.get("stage") == "send" and isinstance(line.get("refused"), dict):
            refused[key] = line["refused"]
    return refused, ambiguous


def _kept(item: Item, refused: dict[str, list[int]]) -> Item:
    """The item without the objects Braze refused."""
    item = item.decoded()

    def keep(array: str) -> tuple[BrazeObject, ...]:
        gone = refused.get(array, ())
        return tuple(o for n, o in enumerate(getattr(item, array)) if n not in gone)

    return item._replace(
        attributes=keep("attributes"), events=keep("events"), purchases=keep("purchases")
    )


def _delivered_rows(
    run_dir: Path,
    sources: Sequence[RowSource],
    converters: Sequence[RowConverter],
    reporter: VerifyReporter | None,
) -> Iterator[tuple[Item, bool]]:
    """(item, uncertain) for every row the run delivered, in the order the run read them."""
    outcomes = read_outcomes(run_dir)
    refused, ambiguous = _partly_delivered(run_dir)
    read = 0
    for source, converter in zip(sources, converters, strict=True):
        for row in source.rows():
            read += 1
            if reporter is not None and read % _PROGRESS_EVERY == 0:
                reporter.progress("reading", read, None)
            if isinstance(row, RowFailure):
                continue
            key = (row.ref.source, row.ref.line)
            outcome = outcomes.outcome(*key)
            landed = key in refused or key in ambiguous
            if outcome is None or (outcome == "failed" and not landed):
                continue
            item = converter.convert(row)
            if not isinstance(item, Item):
                continue
            if key in refused:
                item = _kept(item, refused[key])
            yield item, key in ambiguous


def _fields_to_export(users: Sequence[Expected], only: frozenset[str] | None) -> list[str]:
    """The export fields the sampled users' expectations touch (and the identifiers)."""
    fields: set[str] = set()
    for user in users:
        fields.add("external_id" if user.user.startswith("external_id:") else "user_aliases")
        for name in (*user.attributes, *user.operations):
            if only is not None and name not in only:
                continue
            if name in EXPORTED_STANDARD:
                fields.add(name)
            elif name not in ATTRIBUTE_FIELDS:
                fields.add("custom_attributes")
        if user.events and (only is None or "custom_events" in only):
            fields.add("custom_events")
        if user.purchases and (only is None or "purchases" in only):
            fields.add("purchases")
    return sorted(fields)


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    lock = FileLock(run_dir / ".lock", guarded=run_dir, what="run directory")
    try:
        lock.acquire(Holder.this_process(f"verify {run_dir}"))
    except OSError as exc:
        raise ConfigError(f"cannot lock run directory {run_dir}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()


def _sample(
    run_dir: Path,
    manifest: dict[str, Any],
    api_key: str,
    size: int | None,
    seed: int,
    reporter: VerifyReporter | None,
    source_urls: Sequence[str],
) -> Sample:
    config = config_from(manifest, api_key, run_dir)
    mapping = check_mapping(config, manifest)
    sources: list[RowSource]
    converters: list[RowConverter]
    if manifest.get("kind") == "retry":
        source, converter = reopen_retry(manifest, mapping)
        sources, converters = [source], [converter]
    else:
        files, converters = reopen_files(manifest, config, mapping, source_urls)
        sources = list(files)
    sample = Sample(size, seed)
    try:
        for item, uncertain in _delivered_rows(run_dir, sources, converters, reporter):
            sample.feed(item, uncertain=uncertain)
    finally:
        close_all(sources)
    return sample


def _judge(
    users: Sequence[Expected], found: Found, comparer: Comparer
) -> tuple[list[Mismatch], int, int]:
    """(every mismatch, users mismatching, users missing)."""
    mismatches: list[Mismatch] = []
    mismatched = missing = 0
    for user in users:
        lines = comparer.compare(user, found.get(user.user))
        if not lines:
            continue
        mismatches += lines
        if found.get(user.user) is None:
            missing += 1
        else:
            mismatched += 1
    return mismatches, mismatched, missing


def verify_run(
    run_dir: Path,
    *,
    api_key: str,
    endpoint: str | None = None,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int = 0,
    fields: Sequence[str] | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    rate_per_minute: int = DEFAULT_RATE,
    reporter: VerifyReporter | None = None,
    policy: RetryPolicy | None = None,
    source_urls: Sequence[str] = (),
) -> VerifyReport:
    """Check that Braze holds what the run in ``run_dir`` delivered, for ``sample`` users
    (None: every user). Raises ConfigError (exit 2) when the run's sources or mapping changed.
    ``source_urls``: source URLs that held credentials, given again (as for ``resume``)."""
    started = time.monotonic()
    manifest = read_manifest(run_dir)
    if manifest["settings"].get("dry_run"):
        raise ConfigError(f"{run_dir} was a dry run: it delivered nothing to verify")
    only = frozenset(fields) if fields is not None else None
    with _locked(run_dir):
        chosen = _sample(run_dir, manifest, api_key, sample, seed, reporter, source_urls)
        reading_s = time.monotonic() - started
        users = [u for u in chosen.chosen() if not u.uncertain]
        export = ExportRounds(
            endpoint or manifest["settings"]["endpoint"],
            api_key,
            rate_per_minute,
            _fields_to_export(users, only),
            policy or RetryPolicy(),
        )
        found = export.ask([u.user for u in users], reporter)
        ingested_by = _epoch(manifest.get("ended_at")) or time.time()
        first = Comparer(only, time.time(), ingested_by)
        again = [u.user for u in users if first.compare(u, found.get(u.user))]
        if again:
            time.sleep(settle_s)
            found |= export.ask(again, None)
        final = Comparer(only, time.time(), ingested_by)
        mismatches, mismatched, missing = _judge(users, found, final)
        report = VerifyReport(
            run_dir=run_dir,
            rows_delivered=chosen.rows,
            users_checked=len(users),
            matched=len(users) - mismatched - missing,
            mismatched=mismatched,
            missing=missing,
            users_rechecked=len(again),
            users_uncertain=len(chosen.users) - len(users),
            other_identifier_rows=chosen.other_identifier_rows,
            fields_compared=final.tally.fields_compared,
            operations_checked=final.tally.operations_checked,
            fields_skipped=dict(final.tally.skipped),
            mismatches=len(mismatches),
            requests=export.counters.requests,
            rate_limited=export.counters.rate_limited,
            reading_s=reading_s,
            asking_s=export.seconds,
            elapsed_s=time.monotonic() - started,
        )
        write_results(report, mismatches)
        return report
