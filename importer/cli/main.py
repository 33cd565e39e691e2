"""The ``braze-import`` command: parse options, call the library, draw progress, exit codes.

This module is the group and the console script (usage errors, Ctrl-C); the commands that send
are in ``importer.cli.run_commands``, the others in ``importer.cli.tools`` and
``importer.cli.verify``."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence

import click

from importer.cli.run_commands import resume, retry, run
from importer.cli.tools import init_mapping, sandbox, state
from importer.cli.verify import verify
from importer.errors import Interrupted


def _json_wanted(argv: Sequence[str]) -> bool:
    """``--output json`` asked for, before click could parse it (a usage error)."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    if any(a == "--output=json" or (a == "--output" and b == "json") for a, b in pairs):
        return True
    return os.environ.get("BRAZE_IMPORT_OUTPUT") == "json"


def entry() -> None:
    """The console script: click's own handling, except that Ctrl-C is exit 130 at any moment
    (click would print "Aborted!" and exit 1), and a usage error still answers in JSON when
    ``--output json`` was asked for."""
    try:
        main.main(prog_name="braze-import", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _show_usage_error(exc)
        sys.exit(exc.exit_code)


def _show_usage_error(exc: click.ClickException) -> None:
    """click's message, with every URL shown without its credentials: it quotes what it
    refused (``Got unexpected extra argument (https://user:password@...)``)."""
    from importer.read import redact_urls

    shown = io.StringIO()
    exc.show(file=shown)
    click.echo(redact_urls(shown.getvalue()), err=True, nl=False)
    if _json_wanted(sys.argv[1:]):
        answer = {
            "status": "invalid",
            "exit_code": exc.exit_code,
            "error": redact_urls(exc.format_message()),
        }
        click.echo(json.dumps(answer))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="braze-importer")
def main() -> None:
    """Import legacy CSV/JSONL exports into Braze through POST /users/track."""


for command in (run, resume, retry, init_mapping, sandbox, state, verify):
    main.add_command(command)
