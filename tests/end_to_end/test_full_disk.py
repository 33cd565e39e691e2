"""A run directory on a disk that fills up: exit 3 with one line naming the path and the fix, a
journal as consistent as after a crash, and a ``resume`` that completes exactly once there is
room.

As root (CI here) the run directory is a real 16 KiB tmpfs, grown by a remount before the resume.
Where mounting is not permitted, a stand-in gives the journal's ``os.write`` the same budget: a
short write, then ENOSPC — what a full filesystem does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

KEY = "sandbox-key"
DISK_BYTES = 16 * 1024
MAPPING = """
[identity]
external_id = "id"

[attributes]
plan = "plan"

[[events]]
name = { value = "order" }
time = "ordered"
[events.properties]
order_id = "order"
"""
STAND_IN = """
import errno, os
if os.environ.get("FULL_DISK_BYTES"):
    import importer.rundir.journal as journal

    left = [int(os.environ["FULL_DISK_BYTES"])]

    class _FullDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def write(fd, data):
            if len(data) <= left[0]:
                left[0] -= len(data)
                return os.write(fd, data)
            room, left[0] = left[0], 0
            if room:
                return os.write(fd, bytes(data)[:room])  # a short write, then ENOSPC
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    journal.os = _FullDisk()
"""


def _mount_tmpfs(point: Path, size: int) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], Callable[[], None]]]:
    """(a directory on a small disk, the environment of a run that fills it, make room)."""
    point = tmp_path / "disk"
    point.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    env["BRAZE_API_KEY"] = KEY
    if _mount_tmpfs(point, DISK_BYTES):

        def grow() -> None:
            subprocess.run(["mount", "-o", "remount,size=16m", str(point)], check=True)

        try:
            yield point, env, grow
        finally:
            subprocess.run(["umount", "-l", str(point)], check=False)
        return
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STAND_IN, encoding="utf-8")
    full = env | {"PYTHONPATH": str(hook), "FULL_DISK_BYTES": str(DISK_BYTES // 2)}
    yield point, full, lambda: None


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "importer", *args, "--output", "json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a journal file, each whole (the file ends with a newline)."""
    data = path.read_text(encoding="utf-8") if path.exists() else ""
    assert data == "" or data.endswith("\n"), f"torn last line in {path}"
    return [json.loads(line) for line in data.splitlines()]


def test_a_full_disk_aborts_with_exit_3_and_resume_completes_exactly(
    tmp_path: Path, small_disk: tuple[Path, dict[str, str], Callable[[], None]]
) -> None:
    disk, env, grow = small_disk
    rows = 2_000
    source = tmp_path / "export.csv"
    body = "".join(f"u{n},free,2024-01-01T00:00:00Z,o{n}\n" for n in range(rows))
    source.write_text("id,plan,ordered,order\n" + body, encoding="utf-8")
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    run_dir = disk / "run"
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        full = _cli(
            "run", str(source), "--mapping", str(tmp_path / "map.toml"), "--endpoint",
            sandbox.url, "--run-dir", str(run_dir), "--state", str(tmp_path / "state.db"),
            "--rate", "0", "--workers", "1", "--batch-mode", "legacy", env=env,
        )  # fmt: skip
        assert full.returncode == 3, full.stderr
        answer = json.loads(full.stdout)
        assert answer["status"] == "aborted" and answer["exit_code"] == 3
        message = answer["error"]
        assert "No space left on device" in message and f"cannot write {run_dir}/" in message
        assert f"braze-import resume {run_dir}" in message and "free space" in message
        (line,) = full.stderr.strip().splitlines()  # one line, UTC-stamped (no terminal)
        assert line.endswith(f" error: {message}")
        assert "Traceback" not in full.stderr
        results = _lines(run_dir / "results.jsonl")
        assert 0 < sum(line["delivered"] for line in results) < rows
        _lines(run_dir / "failures.jsonl")
        json.loads((run_dir / "run.json").read_text(encoding="utf-8"))

        grow()
        resumed = _cli("resume", str(run_dir), env={**env, "FULL_DISK_BYTES": ""})
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        events = _accepted_orders(sandbox)
    assert summary["status"] == "complete" and summary["rows_read"] == rows
    assert summary["delivered"] + summary["skipped"].get("unchanged", 0) == rows
    assert summary["failed"] == 0
    assert len(events) == rows and set(events.values()) == {1}  # each event exactly once


def _accepted_orders(sandbox: Sandbox) -> Counter[str]:
    return Counter(str(event["properties"]["order_id"]) for event in sandbox.accepted("events"))
