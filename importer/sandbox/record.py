"""Append accepted objects to <dir>/<array>.jsonl, written through at every request.

Each request's objects go out in one ``os.write`` per array, so the files are complete up to the
last answered request even if the sandbox process is killed. Files are created mode 0600.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from importer.errors import ConfigError
from importer.models import BrazeObject

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, int] = {}
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create record directory {directory}: {exc}") from exc

    def path(self, array: str) -> Path:
        return self.directory / f"{array}.jsonl"

    def write(self, array: str, objects: Sequence[BrazeObject]) -> None:
        if not objects:
            return
        fd = self._files.get(array)
        if fd is None:
            fd = self._open(array)
        data = b"".join([orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE) for obj in objects])
        view = memoryview(data)
        while view:  # a regular file takes it all at once, but a short write is legal
            view = view[os.write(fd, view) :]

    def _open(self, array: str) -> int:
        fd = os.open(self.path(array), _OPEN_FLAGS, 0o600)
        os.fchmod(fd, 0o600)  # an older file may have been created with other rights
        self._files[array] = fd
        return fd

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
