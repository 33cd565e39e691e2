"""Writing the run directory as a run goes: run.json, results.jsonl, failures.jsonl, summary.json.

Logs are appended one whole line per ``os.write`` as answers arrive, so a crash leaves at most a
torn last line; a line the disk had no room for is cut back off at once. A write that fails (full
disk, read-only mount, permissions) raises ``StorageError`` naming the file and the fix, and the
logs stay as consistent as after a crash: ``resume`` completes the run once there is room. The
directory is 0700 and every file 0600 whatever the umask.

Lines are written as they are: the key can only appear where Braze echoes it or in an error, and
the client scrubs response bodies before they get here (importer.send.client). Scrubbing every
line would alter customer data that happens to contain the key's characters.
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from importer.errors import ConfigError, StorageError
from importer.filelock import FileLock, Holder, open_private
from importer.models import ARRAYS, CsvRecord, RowFailure
from importer.send import BatchResult, redact

_RECORD_TEXT_LIMIT = 64 * 1024


def default_run_dir(base: Path = Path("braze-runs")) -> Path:
    return base / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def utc_stamp() -> str:
    """Now, UTC, ISO 8601 to the millisecond: the ``ts`` of a results or failures line."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def storage_error(path: Path, run_dir: Path, exc: OSError) -> StorageError:
    """One line: what could not be written, why, and what to do (resume it, once it exists)."""
    reason = exc.strerror or str(exc)
    if not (run_dir / "run.json").exists():  # nothing to resume: start again elsewhere or later
        return StorageError(
            f"cannot write {path}: {reason}; free space or fix permissions on "
            f"{run_dir.parent}, or choose another --run-dir, then run again"
        )
    return StorageError(
        f"cannot write {path}: {reason}; free space or fix permissions on {run_dir}, "
        f"then: braze-import resume {run_dir}"
    )


def write_error_log(run_dir: Path, exc: BaseException, *secrets: str) -> Path:
    """The traceback of an unexpected error (a bug), the key and a source URL's credentials
    scrubbed, to ``run_dir/error.log``."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = run_dir / "error.log"
    text = "".join(traceback.format_exception(exc))
    for secret in secrets:
        text = redact(text, secret)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{utc_stamp()}\n{text}\n".encode())
    finally:
        os.close(fd)
    return path


def _failure_line(failure: RowFailure, ts: str) -> dict[str, Any]:
    record = failure.record
    if isinstance(record, CsvRecord):
        record = record.as_dict()
    elif isinstance(record, str) and len(record) > _RECORD_TEXT_LIMIT:
        record = record[:_RECORD_TEXT_LIMIT] + "…"
    return {
        "ts": ts,
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


def _result_line(result: BatchResult, ts: str) -> dict[str, Any]:
    refs = result.batch.refs
    lines: dict[str, list[int]] = {}
    # The refs' columns in C (two comprehensions over a request's rows cost ~20 K instructions).
    sources, numbers = zip(*refs, strict=True) if refs else ((), ())
    if sources and sources.count(sources[0]) == len(sources):  # the usual case: one source
        lines[sources[0]] = list(numbers)
    else:
        for ref in refs:
            lines.setdefault(ref.source, []).append(ref.line)
    return {
        "ts": ts,
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

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._results = self._failures = -1
        self._lock = FileLock(run_dir / ".lock", guarded=run_dir, what="run directory")

    @classmethod
    def create(cls, run_dir: Path, manifest: dict[str, Any]) -> Journal:
        """A new run: the directory must not exist or be empty. run.json is written first, so
        a run killed at any later moment can be resumed."""
        try:
            run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        except FileExistsError:
            if any(path.name != "error.log" for path in run_dir.iterdir()):
                raise ConfigError(
                    f"run directory {run_dir} already exists and is not empty"
                ) from None
        except OSError as exc:
            raise storage_error(run_dir, run_dir, exc) from None
        try:
            os.chmod(run_dir, 0o700)
        except OSError as exc:
            raise storage_error(run_dir, run_dir, exc) from None
        journal = cls(run_dir)
        try:
            journal._open(manifest.get("label", str(run_dir)))
            journal.write_json("run.json", manifest)
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def reopen(cls, run_dir: Path) -> Journal:
        """An existing run (resume): lock it, cut torn tails, append."""
        journal = cls(run_dir)
        journal._open(str(run_dir))
        try:
            for name in ("results.jsonl", "failures.jsonl"):
                repair_torn_tail(run_dir / name)
        except OSError as exc:
            journal.close()
            raise storage_error(run_dir / name, run_dir, exc) from None
        return journal

    def _open(self, label: str) -> None:
        try:
            self._lock.acquire(Holder.this_process(label))
        except OSError as exc:
            raise storage_error(self._lock.path, self.run_dir, exc) from None
        append = os.O_WRONLY | os.O_APPEND
        for name in ("results.jsonl", "failures.jsonl"):
            try:
                fd = open_private(self.run_dir / name, append)
            except OSError as exc:
                raise storage_error(self.run_dir / name, self.run_dir, exc) from None
            if name == "results.jsonl":
                self._results = fd
            else:
                self._failures = fd

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

    def _append(self, fd: int, line: dict[str, Any]) -> None:
        data = orjson.dumps(line, default=str) + b"\n"
        try:
            written = os.write(fd, data)
            if written < len(data):  # the disk filled up within the line: cut it back off
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
                raise OSError(28, os.strerror(28))  # ENOSPC: what a full disk says
        except OSError as exc:
            name = "results.jsonl" if fd == self._results else "failures.jsonl"
            raise storage_error(self.run_dir / name, self.run_dir, exc) from None

    def result(self, result: BatchResult, ts: str | None = None) -> None:
        """Failures first, then the result line: a crash between them leaves the batch's other
        rows without an outcome (resent by resume), never a failure without its line. ``ts``:
        when Braze answered (default: now)."""
        ts = ts or utc_stamp()
        for failure in result.failures:
            self.failure(failure, ts)
        self._append(self._results, _result_line(result, ts))

    def failure(self, failure: RowFailure, ts: str | None = None) -> None:
        self._append(self._failures, _failure_line(failure, ts or utc_stamp()))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace ``name`` atomically (write a temporary file, then rename)."""
        target = self.run_dir / name
        temporary = target.with_suffix(".tmp")
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
        try:
            fd = open_private(temporary, os.O_WRONLY | os.O_TRUNC)
            try:
                if os.write(fd, body) < len(body):
                    raise OSError(28, os.strerror(28))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)  # the old file stays whole
            raise storage_error(target, self.run_dir, exc) from None
