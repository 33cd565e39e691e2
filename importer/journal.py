"""The run directory: run.json, results.jsonl, failures.jsonl, summary.json.

Logs are appended one whole line per ``os.write`` as answers arrive, so a crash leaves at most a
torn last line. The directory is 0700 and every file 0600 whatever the umask; the API key is
scrubbed from every byte written, as a last line of defence.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from importer.client import REDACTED
from importer.errors import ConfigError
from importer.models import ARRAYS, RowFailure
from importer.sender import BatchResult

_RECORD_TEXT_LIMIT = 64 * 1024


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def default_run_dir(base: Path = Path("braze-runs")) -> Path:
    return base / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _open_private(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # the mode given to open() is masked by the umask
    return fd


def _failure_line(failure: RowFailure) -> dict[str, Any]:
    record = failure.record
    if isinstance(record, str) and len(record) > _RECORD_TEXT_LIMIT:
        record = record[:_RECORD_TEXT_LIMIT] + "…"
    return {
        "source": failure.ref.source,
        "line": failure.ref.line,
        "stage": failure.stage,
        "error": failure.error,
        "message": failure.message,
        "record": record,
        "objects": failure.objects,
        "attempts": failure.attempts,
    }


def _result_line(result: BatchResult) -> dict[str, Any]:
    lines: dict[str, list[int]] = {}
    for item in result.batch.items:
        lines.setdefault(item.ref.source, []).append(item.ref.line)
    return {
        "batch": result.batch.label,
        "status": result.status,
        "attempts": result.attempts,
        "lines": lines,
        **{a: result.batch.count(a) for a in ARRAYS},
        "errors": result.errors,
        "delivered": len(result.delivered),
        "failed": len(result.failures),
        "latency_ms": round(result.latency_s * 1000, 1),
        "ambiguous": result.ambiguous,
        "split": result.split,
    }


class Journal:
    """Writes one run's files. Use as a context manager."""

    def __init__(self, run_dir: Path, api_key: str) -> None:
        self.run_dir = run_dir
        self._secret = api_key.encode() if api_key else b""
        try:
            run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        except FileExistsError:
            if any(run_dir.iterdir()):
                raise ConfigError(
                    f"run directory {run_dir} already exists and is not empty"
                ) from None
        except OSError as exc:
            raise ConfigError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
        os.chmod(run_dir, 0o700)
        append = os.O_WRONLY | os.O_APPEND
        self._results = _open_private(run_dir / "results.jsonl", append)
        self._failures = _open_private(run_dir / "failures.jsonl", append)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._results, self._failures):
            if fd >= 0:
                os.close(fd)
        self._results = self._failures = -1

    def _scrub(self, data: bytes) -> bytes:
        return data.replace(self._secret, REDACTED.encode()) if self._secret else data

    def _append(self, fd: int, line: dict[str, Any]) -> None:
        os.write(fd, self._scrub(orjson.dumps(line, default=str) + b"\n"))

    def result(self, result: BatchResult) -> None:
        self._append(self._results, _result_line(result))

    def failure(self, failure: RowFailure) -> None:
        self._append(self._failures, _failure_line(failure))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace ``name`` atomically (write a temporary file, then rename)."""
        target = self.run_dir / name
        temporary = target.with_suffix(".tmp")
        fd = _open_private(temporary, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, self._scrub(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
