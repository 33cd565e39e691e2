"""Lines on stderr for people and for log shippers: ``--log-format text`` or ``json``.

Text lines written without a terminal (cron, a container) start with a UTC timestamp, so a log
read the next morning says when each thing happened. ``json`` makes every progress line,
warning and error one JSON object per line, the library's ``logging`` records included.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import click

LogFormat = Literal["text", "json"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogLines:
    """Writes one line per message on stderr in the chosen format."""

    def __init__(self, fmt: LogFormat = "text") -> None:
        self.json = fmt == "json"
        self.stamped = not sys.stderr.isatty()

    def emit(self, message: str, level: str = "info", **fields: Any) -> None:
        if self.json:
            record = {"ts": utc_now(), "level": level, "message": message, **fields}
            click.echo(json.dumps(record, default=str), err=True)
        elif self.stamped:
            click.echo(f"{utc_now()} {message}", err=True)
        else:
            click.echo(message, err=True)

    def warning(self, message: str) -> None:
        self.emit(f"warning: {message}", "warning")

    def error(self, message: str) -> None:
        self.emit(f"error: {message}", "error")


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (
            datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        return json.dumps(
            {
                "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def configure_logging(fmt: LogFormat, verbose: bool) -> LogLines:
    """The library's log records go to stderr in ``fmt``; returns the CLI's own line writer."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return LogLines(fmt)
