"""An exclusive lock that dies with its process: ``fcntl.flock`` on a sidecar file.

The kernel drops a ``flock`` when the last descriptor of the open file goes away, so a run killed
with SIGKILL cannot leave a stale lock behind, and no pid-file guessing is needed. The holder
(pid, host, label, start time) is written into the lock file so a second run can name the first
in its refusal. The lock file is never deleted: unlinking it would let a third process lock a new
inode while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from importer.errors import Locked

_HOLDER_BYTES_MAX = 4096


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock."""

    label: str
    pid: int
    host: str
    started: str

    @classmethod
    def this_process(cls, label: str) -> Holder:
        return cls(label=label, pid=os.getpid(), host=socket.gethostname(), started=utc_now())

    def describe(self) -> str:
        return f"run {self.label!r} (pid {self.pid} on {self.host}, started {self.started})"


def open_private(path: Path, flags: int) -> int:
    """Open (creating) ``path`` with mode 0600 whatever the umask; an existing file is tightened."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the mode given to open() is masked by the umask
    except OSError:
        os.close(fd)
        raise
    return fd


class FileLock:
    """``flock(LOCK_EX | LOCK_NB)`` on the sidecar ``path`` guarding ``guarded``.

    ``what`` names the guarded thing in messages ("state file", "run directory").
    """

    def __init__(self, path: Path, *, guarded: Path, what: str) -> None:
        self.path = path
        self.guarded = guarded
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, holder: Holder) -> None:
        """Take the lock or raise ``Locked`` naming the holder; OSError passes through."""
        fd = open_private(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_holder(fd)
            os.close(fd)
            who = other.describe() if other else "another process"
            raise Locked(
                f"{self.what} {self.guarded} is in use by {who}; "
                "wait for it to finish or stop it first"
            ) from None
        except OSError:
            os.close(fd)
            raise
        # Written after locking: a loser reads it only while we hold the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(asdict(holder)), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody holds it now; a stale name would mislead
        os.close(fd)  # closing the last descriptor drops the flock


def _read_holder(fd: int) -> Holder | None:
    try:
        data: Any = orjson.loads(os.pread(fd, _HOLDER_BYTES_MAX, 0))
        return Holder(
            label=str(data["label"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=str(data["started"]),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # written a moment too late, or not by us
