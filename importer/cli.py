"""The ``braze-import`` command: parse options, call the library, draw progress, exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from importer.config import ImportConfig, ReadOptions, RetryPolicy, resolve_endpoint
from importer.errors import ConfigError, ImporterError
from importer.progress import make_reporter, summary_text

if TYPE_CHECKING:
    from importer.pipeline import Reporter, RunReport

F = TypeVar("F", bound=Callable[..., Any])
SECRET_FLAGS = ("--api-key",)


def redact_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """argv as typed, with the value of every secret flag replaced (for run.json)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg in SECRET_FLAGS:
            out.append(arg)
            hide_next = True
        elif arg.startswith(tuple(f + "=" for f in SECRET_FLAGS)):
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return tuple(out)


def _fail(exc: BaseException, verbose: bool) -> NoReturn:
    if isinstance(exc, ImporterError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if verbose:
        traceback.print_exception(exc)
    click.echo(f"internal error: {type(exc).__name__}: {exc} (--verbose shows details)", err=True)
    sys.exit(3)


def entry() -> None:
    """The console script: click's own handling, except that Ctrl-C is exit 130 at any moment
    (click would print "Aborted!" and exit 1)."""
    try:
        main.main(prog_name="braze-import", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="braze-importer")
def main() -> None:
    """Import legacy CSV/JSONL exports into Braze through POST /users/track."""


_quiet = click.option("--quiet", is_flag=True, help="No progress bar or progress lines.")
_output = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The summary on stdout: text, or one JSON object for a scheduler.",
)
_metrics = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the run's counters in Prometheus text format (node_exporter textfile).",
)
_verbose = click.option("--verbose", is_flag=True, help="Log every request (never the key).")
_api_key_option = click.option(
    "--api-key", envvar="BRAZE_API_KEY", help="REST API key (or $BRAZE_API_KEY)."
)


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--mapping", type=click.Path(dir_okay=False, path_type=Path), help="Mapping TOML.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Override detection.")
@click.option("--encoding", help="Source encoding (default utf-8; a BOM is always stripped).")
@click.option("--max-cell-bytes", type=click.IntRange(min=1), help="Largest CSV cell accepted.")
@click.option("--endpoint", envvar="BRAZE_REST_ENDPOINT", help="Base URL or instance (EU-02).")
@click.option("--api-key", envvar="BRAZE_API_KEY", help="REST API key (or $BRAZE_API_KEY).")
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
    default=100,
    show_default=True,
    help="Requests in flight at most.",
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
@_output
@_metrics
@click.option(
    "--on-ambiguous",
    type=click.Choice(["retry", "fail"]),
    default="retry",
    show_default=True,
    help="After a timeout or dropped connection: resend, or fail.",
)
@click.option("--quiet", is_flag=True, help="No progress bar or progress lines.")
@click.option("--verbose", is_flag=True, help="Log every request (never the key).")
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
    output: str,
    metrics_file: Path | None,
    on_ambiguous: str,
    quiet: bool,
    verbose: bool,
) -> None:
    """Import SOURCE files (.csv .tsv .jsonl .ndjson, optionally .gz; - for stdin)."""
    from importer.runs import run_import

    def start(reporter: Reporter) -> RunReport:
        config = ImportConfig(
            sources=sources,
            endpoint=_endpoint(endpoint, dry_run),
            api_key=_api_key(api_key, dry_run),
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
        sys.exit(130)
    except Exception as exc:
        _fail(exc, verbose)
    finally:
        reporter.close()
    if report.error:
        click.echo(f"error: {report.error}", err=True)
    if metrics_file is not None:
        from importer.metrics import prometheus_text, write_metrics

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
@_api_key_option
@click.option("--rate", type=click.IntRange(min=0), help="Requests per minute (default: as run).")
@click.option("--concurrency", type=click.IntRange(min=1), help="In flight (default: as run).")
@click.option(
    "--max-failed-ratio",
    type=click.FloatRange(0, 1),
    help="A new abort threshold (default: as run).",
)
@_output
@_metrics
@_quiet
@_verbose
def resume(
    run_dir: Path,
    api_key: str | None,
    rate: int | None,
    concurrency: int | None,
    max_failed_ratio: float | None,
    output: str,
    metrics_file: Path | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Continue RUN_DIR after a crash, Ctrl-C or abort: send what has no final outcome yet."""
    from importer.runs import resume_import

    def start(reporter: Reporter) -> RunReport:
        return resume_import(
            run_dir,
            api_key=_api_key(api_key, dry_run=False),
            rate_per_minute=rate,
            concurrency=concurrency,
            max_failed_ratio=max_failed_ratio,
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
@_api_key_option
@_output
@_metrics
@_quiet
@_verbose
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
    from importer.runs import retry_import

    def start(reporter: Reporter) -> RunReport:
        return retry_import(
            run_dir,
            api_key=_api_key(api_key, dry_run=False),
            mapping_path=mapping,
            only=only,
            run_dir=new_run_dir,
            endpoint=resolve_endpoint(endpoint) if endpoint else None,
            command=redact_argv(sys.argv),
            reporter=reporter,
            handle_signals=True,
        )

    _drive(start, quiet=quiet, verbose=verbose, output=output, metrics_file=metrics_file)


def _endpoint(value: str | None, dry_run: bool) -> str:
    if dry_run and not value:
        return "(dry run)"
    return resolve_endpoint(value)


def _api_key(value: str | None, dry_run: bool) -> str:
    if value:
        key = value.strip()
        if not (key.isascii() and key.isprintable()) or " " in key:
            # Never echo it: a pasted key with a newline is still a secret.
            raise ConfigError(
                "the API key holds spaces or control characters; check how it was set"
            )
        return key
    if dry_run:
        return ""
    raise ConfigError("no API key: pass --api-key or set BRAZE_API_KEY")


@main.command("init-mapping")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Override detection.")
@click.option("--encoding", default="utf-8", show_default=True, help="Source encoding.")
@click.option(
    "--sample", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows to profile."
)
def init_mapping(source: str, fmt: str | None, encoding: str, sample: int) -> None:
    """Profile SOURCE and print a commented mapping TOML to start from."""
    from importer.profile import profile_source
    from importer.reader import open_source

    try:
        options = ReadOptions(format=fmt, encoding=encoding)  # type: ignore[arg-type]
        with open_source(source, options) as opened:
            click.echo(profile_source(opened, sample_rows=sample), nl=False)
    except Exception as exc:
        _fail(exc, verbose=False)


def _loopback_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter("the sandbox listens on loopback only (127.0.0.1, ::1)")
    return value


def _sandbox_options(func: F) -> F:
    options = [
        click.option("--host", default="127.0.0.1", show_default=True, callback=_loopback_host),
        click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=0,
            help="0 picks a free port.",
            show_default=True,
        ),
        click.option(
            "--api-key",
            "key",
            default=lambda: os.environ.get("BRAZE_API_KEY"),
            help="Key the sandbox accepts (default $BRAZE_API_KEY or sandbox-key).",
        ),
        click.option(
            "--record",
            type=click.Path(file_okay=False, path_type=Path),
            help="Write accepted objects to DIR/<array>.jsonl.",
        ),
        click.option(
            "--batch-mode",
            type=click.Choice(["combined", "legacy", "mau50"]),
            default="legacy",
            show_default=True,
            help="Object limit enforced.",
        ),
        click.option("--latency-ms", type=float, default=0.0, help="Delay every answer."),
        click.option("--limit-per-minute", type=int, help="Rate limit (429s beyond it)."),
        click.option("--limit-per-3s", type=int, help="Burst limit per 3 seconds."),
        click.option("--limit-per-hour", type=int, help="Hourly limit, reset on the hour."),
        click.option(
            "--reset-header",
            type=click.Choice(["delta", "epoch"]),
            default="delta",
            show_default=True,
            help="x-ratelimit-reset as seconds left or epoch.",
        ),
        click.option("--p-429", type=float, default=0.0, help="Fault: probability of a 429."),
        click.option("--p-500", type=float, default=0.0, help="Fault: probability of a 500."),
        click.option("--p-503", type=float, default=0.0, help="Fault: probability of a 503."),
        click.option("--p-drop", type=float, default=0.0, help="Fault: drop the connection."),
        click.option("--p-slow", type=float, default=0.0, help="Fault: answer slowly."),
        click.option("--slow-ms", type=float, default=2000.0, help="Delay of a slow answer."),
        click.option("--block-external-id", multiple=True, help="Refuse objects of this user."),
        click.option(
            "--poison-external-id",
            multiple=True,
            help="Refuse with a 400 any request carrying this user.",
        ),
        click.option("--seed", type=int, help="Seed for the fault dice."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@_sandbox_options
def sandbox(**opts: Any) -> None:
    """Serve a local Braze-compatible POST /users/track (for tests, demos and benchmarks)."""
    from importer.sandbox import SandboxSettings, serve_forever

    settings = SandboxSettings(
        host=opts["host"],
        port=opts["port"],
        api_key=opts["key"] or "sandbox-key",
        batch_mode=opts["batch_mode"],
        record_dir=opts["record"],
        latency_ms=opts["latency_ms"],
        limit_per_minute=opts["limit_per_minute"],
        limit_per_3s=opts["limit_per_3s"],
        limit_per_hour=opts["limit_per_hour"],
        reset_header=opts["reset_header"],
        p_429=opts["p_429"],
        p_500=opts["p_500"],
        p_503=opts["p_503"],
        p_drop=opts["p_drop"],
        p_slow=opts["p_slow"],
        slow_ms=opts["slow_ms"],
        blocked_external_ids=frozenset(opts["block_external_id"]),
        poisoned_external_ids=frozenset(opts["poison_external_id"]),
        seed=opts["seed"],
        keep_in_memory=False,
    )

    def ready(url: str) -> None:
        click.echo(f"sandbox listening on {url} (POST {url}/users/track)", err=False)
        sys.stdout.flush()

    try:
        serve_forever(settings, on_ready=ready)
    except Exception as exc:
        _fail(exc, verbose=False)


@main.group()
def state() -> None:
    """Look into a --state file."""


@state.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def state_inspect(file: Path) -> None:
    """What FILE holds: users, attribute values, events, purchases, size, the last runs."""
    from importer.state import inspect_state

    try:
        click.echo(json.dumps(inspect_state(file), indent=2, default=str))
    except Exception as exc:
        _fail(exc, verbose=False)
