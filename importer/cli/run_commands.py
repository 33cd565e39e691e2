"""``run``, ``resume`` and ``retry``: the commands that send rows, each one attempt driven with
progress and ended (summary, exit code) through ``importer.cli.ending``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from importer.cli.ending import Invocation, finish_error, finish_report
from importer.cli.logs import LogFormat, LogLines, configure_logging
from importer.cli.metrics import check_available
from importer.cli.options import (
    api_key_of,
    api_key_option,
    endpoint_of,
    log_format_option,
    metrics_option,
    output_option,
    quiet_option,
    redact_argv,
    secrets_of_urls,
    settable_from_env,
    source_url_option,
    verbose_option,
    workers_option,
)
from importer.cli.progress import make_reporter
from importer.config import (
    DEFAULT_CONCURRENCY,
    ImportConfig,
    ReadOptions,
    RetryPolicy,
    resolve_endpoint,
)

if TYPE_CHECKING:
    from importer.runner import Reporter, RunReport


def _ending_options(func: Callable[..., None]) -> Callable[..., None]:
    """How a command ends: summary format, metrics file, progress and log lines."""
    for option in (verbose_option, quiet_option, log_format_option, metrics_option, output_option):
        func = option(func)
    return func


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--mapping", type=click.Path(dir_okay=False, path_type=Path), help="Mapping TOML.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Override detection.")
@click.option("--encoding", help="Source encoding (default utf-8; a BOM is always stripped).")
@click.option("--max-cell-bytes", type=click.IntRange(min=1), help="Largest CSV cell accepted.")
@click.option("--endpoint", envvar="BRAZE_REST_ENDPOINT", help="Base URL or instance (EU-02).")
@api_key_option
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option(
    "--rate",
    type=click.IntRange(min=0),
    default=50_000,
    show_default=True,
    help="Requests per minute; 0 switches the limiter off.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requests in flight at most (workers are added while answers lag).",
)
@click.option(
    "--batch-mode",
    type=click.Choice(["combined", "legacy", "mau50"]),
    default="combined",
    show_default=True,
    help="Object limit per request.",
)
@click.option("--dry-run", is_flag=True, help="Read, convert, validate and pack; send nothing.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite delivery state: send only what changed since the last run.",
)
@click.option(
    "--max-failed-ratio",
    type=click.FloatRange(0, 1),
    help="Abort (exit 3) once more than this share of 1,000+ records failed.",
)
@workers_option
@click.option(
    "--on-ambiguous",
    type=click.Choice(["retry", "fail"]),
    default="retry",
    show_default=True,
    help="After a timeout or dropped connection: resend, or fail.",
)
@_ending_options
def run(
    sources: tuple[str, ...],
    mapping: Path | None,
    fmt: str | None,
    encoding: str | None,
    max_cell_bytes: int | None,
    endpoint: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    run_dir: Path | None,
    rate: int,
    concurrency: int,
    batch_mode: str,
    dry_run: bool,
    state_path: Path | None,
    max_failed_ratio: float | None,
    workers: int | None,
    on_ambiguous: str,
    **ending: Any,
) -> None:
    """Import SOURCE files (.csv .tsv .jsonl .ndjson, optionally .gz; - for stdin).

    A SOURCE may also be a directory, a glob, s3://bucket/key, gs://bucket/key or an https://
    URL; globs work in buckets too (s3://exports/2026-12-01/*.csv.gz)."""
    from importer.rundir import default_run_dir
    from importer.runner import run_import

    run_dir = run_dir or default_run_dir()  # known now: error.log goes there

    def start(reporter: Reporter, key: str) -> RunReport:
        config = ImportConfig(
            sources=sources,
            endpoint=endpoint_of(endpoint, dry_run),
            api_key=key,
            mapping_path=mapping,
            read=ReadOptions(
                format=fmt,  # type: ignore[arg-type]
                encoding=encoding,
                max_cell_bytes=max_cell_bytes,
            ),
            run_dir=run_dir,
            rate_per_minute=rate,
            concurrency=concurrency,
            batch_mode=batch_mode,  # type: ignore[arg-type]
            dry_run=dry_run,
            retry=RetryPolicy(on_ambiguous=on_ambiguous),  # type: ignore[arg-type]
            command=redact_argv(sys.argv),
            state_path=state_path,
            max_failed_ratio=max_failed_ratio,
            workers=workers,
        )
        return run_import(config, reporter, handle_signals=True)

    def key(lines: LogLines) -> str:
        return api_key_of(api_key, dry_run, api_key_file, lines.warning)

    _drive(start, key, run_dir=run_dir, secrets=secrets_of_urls(sources), **ending)


def _drive(
    start: Callable[[Reporter, str], RunReport],
    key: Callable[[LogLines], str],
    *,
    run_dir: Path | None,
    secrets: Sequence[str] = (),
    quiet: bool,
    verbose: bool,
    output: str,
    metrics_file: Path | None,
    log_format: LogFormat,
) -> NoReturn:
    """Run one attempt with progress; end it through ``importer.cli.ending`` whatever happens.
    ``secrets``: a source URL's credentials, scrubbed from every message as the key is."""
    lines = configure_logging(log_format, verbose)
    inv = Invocation(lines, run_dir, output, metrics_file, verbose, [*secrets])
    reporter = make_reporter(quiet, lines)
    try:
        if metrics_file is not None:
            check_available()
        api_key = key(lines)
        inv.secrets.append(api_key)
        report = start(reporter, api_key)
    except (Exception, KeyboardInterrupt) as exc:
        reporter.close()
        finish_error(inv, exc)
    reporter.close()
    finish_report(inv, report.stats, report.run_dir, report.exit_code, report.error)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@api_key_option
@click.option("--rate", type=click.IntRange(min=0), help="Requests per minute (default: as run).")
@click.option("--concurrency", type=click.IntRange(min=1), help="In flight (default: as run).")
@click.option(
    "--max-failed-ratio",
    type=click.FloatRange(0, 1),
    help="A new abort threshold (default: as run).",
)
@workers_option
@source_url_option
@_ending_options
def resume(
    run_dir: Path,
    api_key: str | None,
    api_key_file: Path | None,
    rate: int | None,
    concurrency: int | None,
    max_failed_ratio: float | None,
    workers: int | None,
    source_urls: tuple[str, ...],
    **ending: Any,
) -> None:
    """Continue RUN_DIR after a crash, Ctrl-C or abort: send what has no final outcome yet.

    A source URL that held credentials (user:password@, a presigned query) is not kept in
    run.json: give it again with --source URL."""
    from importer.runner import resume_import

    def start(reporter: Reporter, key: str) -> RunReport:
        return resume_import(
            run_dir,
            api_key=key,
            rate_per_minute=rate,
            concurrency=concurrency,
            max_failed_ratio=max_failed_ratio,
            workers=workers,
            source_urls=source_urls,
            reporter=reporter,
            handle_signals=True,
        )

    def key(lines: LogLines) -> str:
        return api_key_of(api_key, False, api_key_file, lines.warning)

    _drive(start, key, run_dir=run_dir, secrets=secrets_of_urls(source_urls), **ending)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A corrected mapping (default: the parent run's).",
)
@click.option(
    "--only", multiple=True, metavar="CODE", help="Retry only failures with this code (repeatable)."
)
@click.option(
    "--run-dir",
    "new_run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory of the retry.",
)
@click.option("--endpoint", help="Base URL or instance (default: the parent run's).")
@api_key_option
@_ending_options
def retry(
    run_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    new_run_dir: Path | None,
    endpoint: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    **ending: Any,
) -> None:
    """Re-send the records in RUN_DIR's failures.jsonl as a new run."""
    from importer.rundir import default_run_dir
    from importer.runner import retry_import

    new_run_dir = new_run_dir or default_run_dir()

    def start(reporter: Reporter, key: str) -> RunReport:
        return retry_import(
            run_dir,
            api_key=key,
            mapping_path=mapping,
            only=only,
            run_dir=new_run_dir,
            endpoint=resolve_endpoint(endpoint) if endpoint else None,
            command=redact_argv(sys.argv),
            reporter=reporter,
            handle_signals=True,
        )

    def key(lines: LogLines) -> str:
        return api_key_of(api_key, False, api_key_file, lines.warning)

    _drive(start, key, run_dir=new_run_dir, **ending)


for command in (run, resume, retry):
    settable_from_env(command)
