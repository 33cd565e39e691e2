"""The ``braze-import`` commands around the import itself: init-mapping, sandbox, state."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from importer.config import ReadOptions
from importer.errors import ImporterError, InternalError

F = TypeVar("F", bound=Callable[..., Any])


def exit_for(exc: BaseException, verbose: bool) -> NoReturn:
    """The one place an error ends the program: one line on stderr and its exit code."""
    if isinstance(exc, ImporterError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if verbose:
        traceback.print_exception(exc)
    internal = InternalError.wrapping(exc)
    click.echo(f"internal error: {internal} (--verbose shows details)", err=True)
    sys.exit(internal.exit_code)


@click.command("init-mapping")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Override detection.")
@click.option(
    "--encoding", help="Source encoding (default utf-8, or cp1252 when the sample is not UTF-8)."
)
@click.option(
    "--sample", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows to sample."
)
def init_mapping(source: str, fmt: str | None, encoding: str | None, sample: int) -> None:
    """Sample SOURCE (a file, directory, glob, bucket object or URL: the first it names) and
    print a commented mapping TOML to start from."""
    from importer.mapping import draft_file
    from importer.read import expand

    try:
        options = ReadOptions(format=fmt, encoding=encoding)  # type: ignore[arg-type]
        first = expand([source])[0].name
        click.echo(draft_file(first, options, sample_rows=sample), nl=False)
    except Exception as exc:
        exit_for(exc, verbose=False)


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
        click.option(
            "--profiles",
            is_flag=True,
            help="Keep a profile per user and answer POST /users/export/ids (for verify).",
        ),
        click.option(
            "--export-limit-per-minute", type=int, help="Rate limit of /users/export/ids."
        ),
        click.option(
            "--p-lose-attribute",
            type=float,
            default=0.0,
            help="Fault: this share of users is exported without one attribute.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
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
        profiles=opts["profiles"],
        export_limit_per_minute=opts["export_limit_per_minute"],
        p_lose_attribute=opts["p_lose_attribute"],
    )

    def ready(url: str) -> None:
        click.echo(f"sandbox listening on {url} (POST {url}/users/track)", err=False)
        sys.stdout.flush()

    try:
        serve_forever(settings, on_ready=ready)
    except Exception as exc:
        exit_for(exc, verbose=False)


@click.group()
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
        exit_for(exc, verbose=False)
