"""The options several commands share, and how the CLI reads the endpoint and the key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from importer.config import resolve_endpoint
from importer.errors import ConfigError

quiet_option = click.option("--quiet", is_flag=True, help="No progress bar or progress lines.")
verbose_option = click.option("--verbose", is_flag=True, help="Log every request (never the key).")
api_key_option = click.option(
    "--api-key", envvar="BRAZE_API_KEY", help="REST API key (or $BRAZE_API_KEY)."
)
output_option = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The summary on stdout: text, or one JSON object for a scheduler.",
)
metrics_option = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the run's counters in Prometheus text format (node_exporter textfile).",
)

SECRET_FLAGS = ("--api-key",)


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes converting rows (default: one per core this process may use; "
    "1: all in one process).",
)


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


def endpoint_of(value: str | None, dry_run: bool) -> str:
    if dry_run and not value:
        return "(dry run)"
    return resolve_endpoint(value)


def api_key_of(value: str | None, dry_run: bool) -> str:
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
