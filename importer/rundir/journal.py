"""Writing the run directory as a run goes: run.json, results.jsonl, failures.jsonl, summary.json.

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

from importer.errors import ConfigError
from importer.filelock import FileLock, Holder, open_private
from importer.models import ARRAYS, CsvRecord, RowFailure
from importer.send import REDACTED, BatchResult

_RECORD_TEXT_LIMIT = 64 * 1024


def default_run_dir(base: Path = Path("braze-runs")) -> Path:
    return base / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _failure_line(failure: RowFailure) -> dict[str, Any]:
    record = failure.record
    if isinstance(record, CsvRecord):
        record = record.as_dict()
    elif isinstance(record, str) and len(record) > _RECORD_TEXT_LIMIT:
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
        **({"refused": failure.refused} if failure.refused else {}),
    }


def _result_line(result: BatchResult) -> dict[str, Any]:
    refs = result.batch.refs
    sources = {ref.source for ref in refs}
    lines: dict[str, list[int]] = {}
    if len(sources) == 1:  # the usual case, without a dict lookup per row
        lines[sources.pop()] = [ref.line for ref in refs]
    else:
        for ref in refs:
            lines.setdefault(ref.source, []).append(ref.line)
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
        "rate_limited": result.rate_limited,
        "accepted": result.accepted,
    }


def repair_torn_tail(path: Path) -> None:
    """Cut a last line a crash left without its newline, so appends start on a fresh line."""
    if not path.exists():
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


class Journal:
    """Writes one run's files and holds the run directory's lock. Use as a context manager."""

    def __init__(self, run_dir: Path, api_key: str) -> None:
        self.run_dir = run_dir
        self._secret = api_key.encode() if api_key else b""
        self._results = self._failures = -1
        self._lock = FileLock(run_dir / ".lock", guarded=run_dir, what="run directory")

    @classmethod
    def create(cls, run_dir: Path, api_key: str, manifest: dict[str, Any]) -> Journal:
        """A new run: the directory must not exist or be empty. run.json is written first, so
        a run killed at any later moment can be resumed."""
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
        journal = cls(run_dir, api_key)
        journal._open(manifest.get("label", str(run_dir)))
        journal.write_json("run.json", manifest)
        return journal

    @classmethod
    def reopen(cls, run_dir: Path, api_key: str) -> Journal:
        """An existing run (resume): lock it, cut torn tails, append."""
        journal = cls(run_dir, api_key)
        journal._open(str(run_dir))
        for name in ("results.jsonl", "failures.jsonl"):
            repair_torn_tail(run_dir / name)
        return journal

    def _open(self, label: str) -> None:
        try:
            self._lock.acquire(Holder.this_process(label))
        except OSError as exc:
            raise ConfigError(f"cannot lock run directory {self.run_dir}: {exc.strerror}") from None
        append = os.O_WRONLY | os.O_APPEND
        self._results = open_private(self.run_dir / "results.jsonl", append)
        self._failures = open_private(self.run_dir / "failures.jsonl", append)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._results, self._failures):
            if fd >= 0:
                os.close(fd)
        self._results = self._failures = -1
        self._lock.release()

    def _scrub(self, data: bytes) -> bytes:
        return data.replace(self._secret, REDACTED.encode()) if self._secret else data

    def _append(self, fd: int, line: dict[str, Any]) -> None:
        os.write(fd, self._scrub(orjson.dumps(line, default=str) + b"\n"))

    def result(self, result: BatchResult) -> None:
        """Failures first, then the result line: a crash between them leaves the batch's other
        rows without an outcome (resent by resume), never a failure without its line."""
        for failure in result.failures:
            self.failure(failure)
        self._append(self._results, _result_line(result))

    def failure(self, failure: RowFailure) -> None:
        self._append(self._failures, _failure_line(failure))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace ``name`` atomically (write a temporary file, then rename)."""
        target = self.run_dir / name
        temporary = target.with_suffix(".tmp")
        fd = open_private(temporary, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, self._scrub(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
