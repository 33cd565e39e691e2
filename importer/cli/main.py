"""The ``braze-import`` command: parse options, call the library, draw progress, exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from importer.cli.options import (
    api_key_of,
    api_key_option,
    endpoint_of,
    metrics_option,
    output_option,
    quiet_option,
    redact_argv,
    verbose_option,
    workers_option,
)
from importer.cli.progress import make_reporter, summary_text
from importer.cli.tools import exit_for, init_mapping, sandbox, state
from importer.cli.verify import verify
from importer.config import (
    DEFAULT_CONCURRENCY,
    ImportConfig,
    ReadOptions,
    RetryPolicy,
    resolve_endpoint,
)
from importer.errors import Interrupted

if TYPE_CHECKING:
    from importer.runner import Reporter, RunReport


def entry() -> None:
    """The console script: click's own handling, except that Ctrl-C is exit 130 at any moment
    (click would print "Aborted!" and exit 1)."""
    try:
        main.main(prog_name="braze-import", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="braze-importer")
def main() -> None:
    """Import legacy CSV/JSONL exports into Braze through POST /users/track."""


@main.command()
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
@output_option
@metrics_option
@click.option(
    "--on-ambiguous",
    type=click.Choice(["retry", "fail"]),
    default="retry",
    show_default=True,
    help="After a timeout or dropped connection: resend, or fail.",
)
@quiet_option
@verbose_option
def run(
    sources: tuple[str, ...],
    mapping: Path | None,
    fmt: str | None,
    encoding: str | None,
    max_cell_bytes: int | None,
    endpoint: str | None,
    api_key: str | None,
    run_dir: Path | None,
    rate: int,
    concurrency: int,
    batch_mode: str,
    dry_run: bool,
    state_path: Path | None,
    max_failed_ratio: float | None,
    workers: int | None,
    output: str,
    metrics_file: Path | None,
    on_ambiguous: str,
    quiet: bool,
    verbose: bool,
) -> None:
    """Import SOURCE files (.csv .tsv .jsonl .ndjson, optionally .gz; - for stdin)."""
    from importer.runner import run_import

    def start(reporter: Reporter) -> RunReport:
        config = ImportConfig(
            sources=sources,
            endpoint=endpoint_of(endpoint, dry_run),
            api_key=api_key_of(api_key, dry_run),
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

    _drive(start, quiet=quiet, verbose=verbose, output=output, metrics_file=metrics_file)


def _drive(
    start: Callable[[Reporter], RunReport],
    *,
    quiet: bool,
    verbose: bool,
    output: str = "text",
    metrics_file: Path | None = None,
) -> NoReturn:
    """Run one attempt with progress; print the summary; exit with the documented code."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    reporter = make_reporter(quiet)
    try:
        report = start(reporter)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except Exception as exc:
        exit_for(exc, verbose)
    finally:
        reporter.close()
    if report.error:
        click.echo(f"error: {report.error}", err=True)
    if metrics_file is not None:
        from importer.cli.metrics import prometheus_text, write_metrics

        write_metrics(metrics_file, prometheus_text(report.stats, report.exit_code))
    if output == "json":
        summary = report.stats.as_summary()
        summary |= {"run_dir": str(report.run_dir), "exit_code": report.exit_code}
        if report.error:
            summary["error"] = report.error
        click.echo(json.dumps(summary))
    else:
        click.echo(summary_text(report.stats, report.run_dir, report.exit_code))
    sys.exit(report.exit_code)


@main.command()
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
@output_option
@metrics_option
@quiet_option
@verbose_option
def resume(
    run_dir: Path,
    api_key: str | None,
    rate: int | None,
    concurrency: int | None,
    max_failed_ratio: float | None,
    workers: int | None,
    output: str,
    metrics_file: Path | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Continue RUN_DIR after a crash, Ctrl-C or abort: send what has no final outcome yet."""
    from importer.runner import resume_import

    def start(reporter: Reporter) -> RunReport:
        return resume_import(
            run_dir,
            api_key=api_key_of(api_key, dry_run=False),
            rate_per_minute=rate,
            concurrency=concurrency,
            max_failed_ratio=max_failed_ratio,
            workers=workers,
            reporter=reporter,
            handle_signals=True,
        )

    _drive(start, quiet=quiet, verbose=verbose, output=output, metrics_file=metrics_file)


@main.command()
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
@output_option
@metrics_option
@quiet_option
@verbose_option
def retry(
    run_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    new_run_dir: Path | None,
    endpoint: str | None,
    api_key: str | None,
    output: str,
    metrics_file: Path | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Re-send the records in RUN_DIR's failures.jsonl as a new run."""
    from importer.runner import retry_import

    def start(reporter: Reporter) -> RunReport:
        return retry_import(
            run_dir,
            api_key=api_key_of(api_key, dry_run=False),
            mapping_path=mapping,
            only=only,
            run_dir=new_run_dir,
            endpoint=resolve_endpoint(endpoint) if endpoint else None,
            command=redact_argv(sys.argv),
            reporter=reporter,
            handle_signals=True,
        )

    _drive(start, quiet=quiet, verbose=verbose, output=output, metrics_file=metrics_file)


for command in (init_mapping, sandbox, state, verify):
    main.add_command(command)
