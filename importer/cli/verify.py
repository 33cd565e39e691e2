"""``braze-import verify``: the click shell over ``importer.verify.verify_run``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from importer.cli.options import (
    api_key_of,
    api_key_option,
    output_option,
    quiet_option,
    source_url_option,
)
from importer.cli.tools import exit_for
from importer.config import resolve_endpoint
from importer.errors import Interrupted

if TYPE_CHECKING:
    from importer.verify import VerifyReport

_LINE_EVERY_S = 5.0


class _ProgressLines:
    """A line on stderr every few seconds: rows read, then users asked."""

    def __init__(self) -> None:
        self._last = 0.0
        self._phase = ""

    def progress(self, phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if phase == self._phase and now - self._last < _LINE_EVERY_S and not finished:
            return
        self._phase, self._last = phase, now
        if phase == "reading":
            click.echo(f"verify: read {done:,} rows of the run's sources", err=True)
        else:
            click.echo(f"verify: asked Braze for {done:,} of {total or 0:,} users", err=True)


def _count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A count as people write it: 5000, 5,000 or 5_000."""
    if value is None:
        return None
    digits = value.replace(",", "").replace("_", "")
    if not digits.isdigit() or int(digits) < 1:
        raise click.BadParameter(f"{value!r} is not a positive whole number")
    return int(digits)


def _fields(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one field")
    return names


def summary_text(report: VerifyReport) -> str:
    skipped = ", ".join(f"{why} {n:,}" for why, n in sorted(report.fields_skipped.items()))
    lines = [
        f"verify: {report.users_checked:,} users checked ({report.rows_delivered:,} delivered "
        f"rows read): {report.matched:,} matched, {report.mismatched:,} mismatched, "
        f"{report.missing:,} missing",
        f"  fields compared {report.fields_compared:,}, changed by operations (presence and "
        f"type) {report.operations_checked:,}, skipped: {skipped or 'none'}",
    ]
    if report.users_uncertain or report.other_identifier_rows:
        lines.append(
            f"  not checked: {report.users_uncertain:,} users with an ambiguous delivery, "
            f"{report.other_identifier_rows:,} rows of users without external_id or alias"
        )
    lines.append(
        f"  {report.requests:,} export requests in {report.elapsed_s:.1f} s; "
        f"{report.users_rechecked:,} users asked again after the settle delay"
    )
    where = report.run_dir / "verify.jsonl"
    if report.mismatches:
        lines.append(f"  mismatches: {where}")
    else:
        lines.append("  every field matched" if report.users_checked else "  no user to check")
    return "\n".join(lines)


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--sample", callback=_count, metavar="N", help="Users to check (default 1,000), at random."
)
@click.option("--all", "check_all", is_flag=True, help="Check every delivered user.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option(
    "--fields",
    callback=_fields,
    metavar="a,b,...",
    help="Compare only these attributes (custom_events, purchases for those).",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    help="Seconds before mismatching users are asked again (default 60).",
)
@click.option(
    "--rate", type=click.IntRange(min=1), help="Export requests per minute (default 250)."
)
@click.option("--endpoint", envvar="BRAZE_REST_ENDPOINT", help="Base URL (default: the run's).")
@api_key_option
@source_url_option
@output_option
@quiet_option
def verify(
    run_dir: Path,
    sample: int | None,
    check_all: bool,
    seed: int,
    fields: list[str] | None,
    settle: float | None,
    rate: int | None,
    endpoint: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    source_urls: tuple[str, ...],
    output: str,
    quiet: bool,
) -> None:
    """Read RUN_DIR's users back from Braze (/users/export/ids) and compare them field by
    field with what the run delivered. Exit 0: all match; 1: a mismatch (verify.jsonl)."""
    from importer.verify import DEFAULT_RATE, DEFAULT_SAMPLE, DEFAULT_SETTLE_S, verify_run

    if check_all and sample is not None:
        raise click.UsageError("--sample and --all exclude each other")
    options: dict[str, Any] = {
        "sample": None if check_all else (sample or DEFAULT_SAMPLE),
        "seed": seed,
        "fields": fields,
        "settle_s": DEFAULT_SETTLE_S if settle is None else settle,
        "rate_per_minute": rate or DEFAULT_RATE,
        "reporter": None if quiet else _ProgressLines(),
        "source_urls": source_urls,
    }
    try:
        report = verify_run(
            run_dir,
            api_key=api_key_of(api_key, False, api_key_file, _warn),
            endpoint=resolve_endpoint(endpoint) if endpoint else None,
            **options,
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except Exception as exc:
        exit_for(exc, verbose=False)
    if output == "json":
        click.echo(json.dumps(report.as_summary()))
    else:
        click.echo(summary_text(report))
    sys.exit(report.exit_code)
