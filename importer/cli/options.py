"""The options several commands share, and how the CLI reads the endpoint and the key.

Every option of ``run``, ``resume`` and ``retry`` can also come from the environment as
``BRAZE_IMPORT_<OPTION>`` (``settable_from_env``); a flag on the command line beats it.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from importer.config import resolve_endpoint
from importer.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
ENV_PREFIX = "BRAZE_IMPORT_"
# A Braze REST key is a 36-character UUID; anything this short is a mistake (say, a key file
# holding a placeholder), and would make redacting it from errors meaningless.
MIN_KEY_LENGTH = 8

quiet_option = click.option("--quiet", is_flag=True, help="No progress bar or progress lines.")
verbose_option = click.option("--verbose", is_flag=True, help="Log every request (never the key).")
KEY_FILE_HELP = "File holding the REST API key (a mounted secret); a trailing newline is dropped."


def api_key_option(func: Callable[..., None]) -> Callable[..., None]:
    """--api-key-file (preferred: a flag's value shows in ``ps``) and --api-key."""
    path = click.Path(dir_okay=False, path_type=Path)
    func = click.option(
        "--api-key-file", envvar="BRAZE_API_KEY_FILE", type=path, help=KEY_FILE_HELP
    )(func)
    key_help = "REST API key (visible in ps: prefer --api-key-file or $BRAZE_API_KEY)."
    return click.option("--api-key", envvar="BRAZE_API_KEY", help=key_help)(func)


def _text_or_json(flag: str, help_text: str) -> Callable[[F], F]:
    choice = click.Choice(["text", "json"])
    return click.option(flag, type=choice, default="text", show_default=True, help=help_text)


log_format_option = _text_or_json(
    "--log-format",
    "stderr lines: text (UTC-stamped without a terminal) or one JSON object per line.",
)
output_option = _text_or_json(
    "--output", "The summary on stdout: text, or one JSON object for a scheduler."
)
metrics_option = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the run's counters in Prometheus text format (node_exporter textfile).",
)

SECRET_FLAGS = ("--api-key",)


def settable_from_env(command: click.Command) -> click.Command:
    """Let every option of ``command`` come from ``BRAZE_IMPORT_<OPTION>`` (named after its long
    flag, so ``--state`` is ``BRAZE_IMPORT_STATE``), and show the variables in ``--help``. An
    older variable an option already reads (``BRAZE_API_KEY``) keeps working after it."""
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        flag = max(param.opts, key=len).lstrip("-")
        own = ENV_PREFIX + flag.replace("-", "_").upper()
        earlier = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
        param.envvar = [own, *earlier]
        param.show_envvar = True
    return command


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes converting rows (default: one per core this process may use; "
    "1: all in one process).",
)


source_url_option = click.option(
    "--source",
    "source_urls",
    multiple=True,
    metavar="URL",
    envvar="BRAZE_IMPORT_SOURCE",  # out of ps: a credential on the command line shows there
    help="A source URL that held credentials, given again (run.json keeps it without them); "
    "repeatable.",
)


def secrets_of_urls(urls: Sequence[str]) -> list[str]:
    """What to scrub from every message: the credentials the URLs carry."""
    from importer.read import url_secrets

    return [secret for url in urls for secret in url_secrets(url)]


def redact_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """argv as typed, with the value of every secret flag replaced and every URL shown without
    its credentials (for run.json)."""
    from importer.read import redact_urls

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
            out.append(redact_urls(arg))
    return tuple(out)


def endpoint_of(value: str | None, dry_run: bool) -> str:
    if dry_run and not value:
        return "(dry run)"
    return resolve_endpoint(value)


def _checked(key: str, origin: str) -> str:
    # Never echo it: a pasted key with a newline is still a secret.
    if not (key.isascii() and key.isprintable()) or " " in key:
        raise ConfigError(f"the API key from {origin} holds spaces or control characters")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"the API key from {origin} is implausibly short ({len(key)} characters; "
            "a Braze REST key has 36); check how it was set"
        )
    return key


def read_key_file(path: Path, warn: Callable[[str], None]) -> str:
    """The key in ``path`` without its trailing newline; warns when others may read the file."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read the API key file {path}: {reason}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"the API key file {path} is readable by group or others; chmod 600 {path}")
    key = text.rstrip("\r\n")
    if not key:
        raise ConfigError(f"the API key file {path} is empty")
    return _checked(key, str(path))


def _given_on_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def api_key_of(
    value: str | None,
    dry_run: bool,
    key_file: Path | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> str:
    """The key from --api-key, --api-key-file or their variables: a flag beats a variable, and
    the two flags (or the two variables) together are refused."""
    ctx = click.get_current_context(silent=True)
    if value and key_file is not None:
        flag_key = ctx is not None and _given_on_command_line(ctx, "api_key")
        flag_file = ctx is not None and _given_on_command_line(ctx, "api_key_file")
        if flag_key == flag_file:
            raise ConfigError("give the API key one way: --api-key or --api-key-file, not both")
        if flag_file:
            value = None
        else:
            key_file = None
    if key_file is not None:
        return read_key_file(key_file, warn)
    if value:
        return _checked(value.strip(), "--api-key")
    if dry_run:
        return ""
    raise ConfigError(
        "no API key: pass --api-key-file or --api-key, or set BRAZE_API_KEY_FILE or BRAZE_API_KEY"
    )
