"""What a verification found: ``VerifyReport``, and its two files in the run directory.

``verify.jsonl``: one line per mismatch (user, field, expected, found, reason). ``verify.json``:
the counts. Both are replaced whole (written aside, then renamed) and created 0600: they hold
customer values.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from importer.errors import EXIT_OK, RecordError
from importer.filelock import open_private
from importer.verify.compare import Mismatch

EXIT_MISMATCH = RecordError.exit_code  # 1: like a run with failed records


class VerifyReporter(Protocol):
    """How verify reports progress; the CLI draws it. ``phase`` is "reading" (rows read of
    the sources; ``total`` None) or "asking" (users asked of ``total``)."""

    def progress(self, phase: str, done: int, total: int | None) -> None: ...


@dataclass(frozen=True, slots=True)
class VerifyReport:
    run_dir: Path
    rows_delivered: int  # delivered rows read again
    users_checked: int
    matched: int
    mismatched: int  # users with at least one mismatching field (missing ones not included)
    missing: int  # users the export did not return
    users_rechecked: int  # asked again after the settle delay
    users_uncertain: int  # a row may or may not have landed (ambiguous): not judged
    other_identifier_rows: int  # rows of users identified otherwise than external_id / alias
    fields_compared: int
    operations_checked: int
    fields_skipped: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0  # lines of verify.jsonl
    requests: int = 0
    rate_limited: int = 0
    reading_s: float = 0.0  # reading the sources again and working out the expected values
    asking_s: float = 0.0  # asking the export (both rounds, the settle delay not included)
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.mismatched == 0 and self.missing == 0 else EXIT_MISMATCH

    def as_summary(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["run_dir"] = str(self.run_dir)
        for name in ("reading_s", "asking_s", "elapsed_s"):
            summary[name] = round(summary[name], 3)
        summary["exit_code"] = self.exit_code
        return summary


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = open_private(temporary, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def write_results(report: VerifyReport, mismatches: Iterable[Mismatch]) -> None:
    lines = b"".join(
        orjson.dumps(m.as_line(), default=str, option=orjson.OPT_APPEND_NEWLINE) for m in mismatches
    )
    _replace(report.run_dir / "verify.jsonl", lines)
    _replace(
        report.run_dir / "verify.json",
        orjson.dumps(report.as_summary(), option=orjson.OPT_INDENT_2) + b"\n",
    )
