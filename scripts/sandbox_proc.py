"""Start `braze-import sandbox` as a separate process and wait for its URL (demo and bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

SANDBOX_KEY = "sandbox-key"
_TICK = os.sysconf("SC_CLK_TCK")


class Sandbox:
    """A running sandbox: its URL and process; ``cpu_s()`` is its CPU so far (from /proc)."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def cpu_s(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _TICK


def pinned(cpus: Iterable[int] | None) -> object:
    """A ``preexec_fn`` that pins the child to ``cpus`` (what ``taskset -c`` does); None: none."""
    if cpus is None:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


@contextmanager
def sandbox(*options: str, cpus: Iterable[int] | None = None) -> Iterator[Sandbox]:
    """Yield the running sandbox (pinned to ``cpus`` if given); stop the process on exit."""
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "importer",
        "sandbox",
        "--port",
        "0",
        "--api-key",
        SANDBOX_KEY,
        *options,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(cpus),  # type: ignore[arg-type]
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield Sandbox(proc, line.split("listening on ", 1)[1].split()[0])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def sandbox_process(*options: str, cpus: Iterable[int] | None = None) -> Iterator[str]:
    """Yield the sandbox URL; stop the process on exit."""
    with sandbox(*options, cpus=cpus) as running:
        yield running.url
