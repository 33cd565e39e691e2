"""Remote sources as byte streams that survive a dropped connection.

A backend (``importer.read.cloud`` for ``s3://`` and ``gs://``, ``importer.read.web`` for
``https://``) lists, describes and streams objects. ``ResumingStream`` reads one object from
its start; when the connection drops (or the body ends short of the listed size) it asks the
backend again from the byte offset reached, for the same version, so no byte is read twice or
lost. After ``RETRY_WAITS`` are spent, or if the object changed meanwhile, it raises
``SourceLost`` (exit 3): the run stops resumably with every row read so far accounted for.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from importer.errors import SourceLost
from importer.read.locations import Location

log = logging.getLogger("importer")
RETRY_WAITS = (0.2, 1.0, 2.0, 4.0, 8.0)  # seconds before each new try from the offset reached
CHUNK_BYTES = 256 * 1024


class Dropped(Exception):
    """The connection failed or the body ended early: worth another try from the offset."""


class Changed(Exception):
    """The object is not the version the run started with."""


class Backend(Protocol):
    def listing(self, url: str) -> tuple[str, Iterator[Location]]:
        """The objects under the literal folders of ``url`` (a glob or folder), and the
        URL prefix their keys follow."""
        ...

    def head(self, url: str) -> Location: ...

    def chunks(self, location: Location, offset: int) -> Iterator[bytes]:
        """The object's bytes from ``offset``; raises Dropped or Changed."""
        ...


class ResumingStream(io.RawIOBase):
    """One remote object from its first byte, resumed from the offset after a drop."""

    def __init__(self, location: Location, backend: Backend) -> None:
        super().__init__()
        self.location = location
        self._backend = backend
        self.offset = 0
        self.resumed = 0  # how many times the connection was taken up again
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._next_chunk()
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.offset += n
        return n

    def _next_chunk(self) -> bytes:
        size = self.location.size
        if size is not None and self.offset >= size:
            return b""
        problem = ""
        for tries, wait in enumerate((0.0, *RETRY_WAITS)):
            if tries:
                log.warning(
                    "%s: %s; reading on from byte %d", self.location.display, problem, self.offset
                )
                time.sleep(wait)  # backoff before asking the store again
                self.resumed += 1
            try:
                if self._chunks is None:
                    self._chunks = self._backend.chunks(self.location, self.offset)
                chunk = next(self._chunks, b"")
                if chunk or size is None:
                    return chunk
                problem = f"the body ended at byte {self.offset:,} of {size:,}"
            except Dropped as exc:
                problem = str(exc)
            except Changed as exc:
                raise SourceLost(
                    f"{self.location.display} changed while being read: {exc}"
                ) from None
            self._chunks = None
        raise SourceLost(
            f"{self.location.display}: reading failed at byte {self.offset:,} after "
            f"{len(RETRY_WAITS)} retries ({problem}); resume the run once it reads again"
        )

    def close(self) -> None:
        self._chunks = None
        super().close()
