"""How a run, resume or retry ends, whatever happened: one answer for the scheduler.

Every exit — a finished run, a broken mapping, a busy state file, a full disk, a bug, Ctrl-C —
goes through here, so every exit writes the metrics file (when asked), prints exactly one JSON
object with ``--output json``, and says on stderr, in one line without the key, what went wrong.
A bug (an exception nobody expected) leaves its traceback in ``error.log`` in the run directory
and exits 70.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from importer.cli.logs import LogLines
from importer.errors import ImporterError, InternalError, Interrupted, innermost
from importer.models import ImportStats

# The status a scheduler reads when no run (or no whole run) happened, by exit code.
STATUS_OF_EXIT = {
    2: "invalid",
    3: "aborted",
    70: "internal_error",
    75: "locked",
    130: "interrupted",
}


def _redact(text: str, secret: str) -> str:
    from importer.send import redact

    return redact(text, secret)


@dataclass(slots=True)
class Invocation:
    """What the CLI knows about one command before the library runs it."""

    lines: LogLines
    run_dir: Path | None
    output: str = "text"
    metrics_file: Path | None = None
    verbose: bool = False
    # The key, as soon as it is known, and a source URL's credentials (importer.read.url_secrets).
    secrets: list[str] = field(default_factory=list)

    def redacted(self, text: str) -> str:
        for secret in self.secrets:
            text = _redact(text, secret)
        return text


def _publish(
    inv: Invocation, stats: ImportStats | None, exit_code: int, status: str, error: str | None
) -> None:
    """The metrics file and the JSON answer; both exist for every exit."""
    if inv.metrics_file is not None:
        from importer.cli.metrics import outcome_now, write_metrics

        succeeded = stats is not None and status in ("complete", "partial")
        try:
            write_metrics(
                inv.metrics_file, outcome_now(stats or ImportStats(), exit_code, succeeded)
            )
        except ImporterError as exc:  # the run's own exit code still tells what it did
            inv.lines.error(str(exc))
    if inv.output == "json":
        answer: dict[str, Any] = stats.as_summary() if stats is not None else {}
        if inv.run_dir is not None:
            answer["run_dir"] = str(inv.run_dir)
        answer |= {"status": status, "exit_code": exit_code}
        if error:
            answer["error"] = error
        sys.stdout.write(json.dumps(answer) + "\n")


def finish_report(
    inv: Invocation, stats: ImportStats, run_dir: Path, exit_code: int, error: str | None
) -> NoReturn:
    """A run happened (it may have aborted): its summary, metrics and exit code."""
    from importer.cli.progress import summary_text

    inv.run_dir = run_dir
    error = inv.redacted(error) if error else None
    if error:
        inv.lines.error(error)
    _publish(inv, stats, exit_code, stats.status, error)
    if inv.output != "json":
        sys.stdout.write(summary_text(stats, run_dir, exit_code) + "\n")
    sys.stdout.flush()
    sys.exit(exit_code)


def _error_log(inv: Invocation, exc: BaseException) -> str:
    """Where the traceback went, for the one-line message."""
    if inv.run_dir is None:
        return "run again with --verbose to see it"
    from importer.rundir import write_error_log

    try:
        path = write_error_log(inv.run_dir, exc, *inv.secrets)
    except OSError as failed:
        return f"could not write error.log in {inv.run_dir} ({failed.strerror}); --verbose shows it"
    return f"traceback in {path}"


def finish_error(inv: Invocation, exc: BaseException) -> NoReturn:
    """No run, or not a whole one: a one-line message, metrics, the JSON answer, the code."""
    exc = innermost(exc)
    if isinstance(exc, KeyboardInterrupt):
        exit_code, message = Interrupted.exit_code, "interrupted"
    elif isinstance(exc, ImporterError):
        exit_code, message = exc.exit_code, inv.redacted(str(exc))
    else:
        internal = InternalError.wrapping(exc)
        exit_code = internal.exit_code
        message = inv.redacted(f"internal error (a bug): {internal}; {_error_log(inv, exc)}")
        if inv.verbose:
            sys.stderr.write(inv.redacted("".join(traceback.format_exception(exc))))
    inv.lines.error(message)
    _publish(inv, None, exit_code, STATUS_OF_EXIT.get(exit_code, "failed"), message)
    sys.stdout.flush()
    sys.exit(exit_code)
