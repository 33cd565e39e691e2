"""Start `braze-import sandbox` as a separate process and wait for its URL (demo and bench)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

SANDBOX_KEY = "sandbox-key"


@contextmanager
def sandbox_process(*options: str) -> Iterator[str]:
    """Yield the sandbox URL; stop the process on exit."""
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
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
