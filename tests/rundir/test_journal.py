"""The journal's own failures: a run directory that cannot be written, the bug report."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from importer.errors import StorageError
from importer.rundir import Journal, write_error_log


def test_an_unwritable_run_directory_is_exit_3_naming_the_path_and_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    run_dir = blocker / "run"
    with pytest.raises(StorageError) as refused:
        Journal.create(run_dir, {"status": "running"})
    message = str(refused.value)
    assert refused.value.exit_code == 3 and "\n" not in message
    assert message.startswith(f"cannot write {run_dir}: Not a directory")
    assert "choose another --run-dir" in message and "resume" not in message  # nothing to resume


def test_the_bug_report_is_private_and_holds_no_key(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    try:
        raise RuntimeError(f"unexpected, with {secret} in the message")
    except RuntimeError as exc:
        path = write_error_log(tmp_path / "run", exc, secret)
    text = path.read_text(encoding="utf-8")
    assert "Traceback" in text and "RuntimeError: unexpected, with [REDACTED]" in text
    assert secret not in text and stat.S_IMODE(path.stat().st_mode) == 0o600
