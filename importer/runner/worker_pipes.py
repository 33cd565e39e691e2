"""One worker process's pipes as the main process holds them (``WorkerPipes``), and a task's
``Ticket`` for its answer: task bytes written without blocking as the pipe has room, answers read
in the framing of ``multiprocessing.connection`` straight into the worker's receive buffer, each
decoded there and given to the ticket of the oldest task not answered yet; a worker that dies
fails its tickets. The set of workers, which polls these pipes and picks the worker for a task,
is ``importer.runner.channels``.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, Protocol

from importer.errors import AbortError
from importer.runner.messages import RemoteTraceback, answer_of

LENGTH = struct.Struct("!i")  # multiprocessing.connection's framing, which the workers use
_LONG = struct.Struct("!Q")  # after a length of -1: a message of 2 GiB or more
_MORE = LENGTH.pack(-1)
# A receive buffer grown past this by one large answer is let go once that answer is decoded.
KEEP_BUFFER_BYTES = 4 * 1024 * 1024


class WorkerSet(Protocol):
    """What a worker's pipes ask of the set they belong to: ``importer.runner.channels.Workers``."""

    dead: AbortError | None

    def pump(self, timeout: float | None) -> None: ...

    async def wait_for(self, ticket: Ticket) -> None: ...

    def forget(self, worker: WorkerPipes) -> None: ...


class Ticket:
    """One task's answer, once its worker's pipe has brought it."""

    __slots__ = ("_answer", "_worker", "weight")

    def __init__(self, worker: WorkerPipes, weight: int) -> None:
        self._worker = worker
        self.weight = weight
        self._answer: tuple[bool, Any, str] | BaseException | None = None

    def done(self) -> bool:
        if self._answer is None:
            self._worker.workers.pump(0)
        return self._answer is not None

    async def wait(self) -> None:
        await self._worker.workers.wait_for(self)

    def result(self) -> Any:
        """The task's return value (a worker's exception raised again here); blocks."""
        while self._answer is None:
            self._worker.workers.pump(None)
        answer = self._answer
        if isinstance(answer, BaseException):
            raise answer
        ok, value, trace = answer
        if not ok:
            raise value from RemoteTraceback(trace)
        return value


class WorkerPipes:
    """One worker process's two pipes, the main process's ends: the task bytes waiting for room,
    the answer being read, the tickets waiting for theirs in the order of their tasks."""

    __slots__ = (
        "answers",
        "buffer",
        "dead",
        "filled",
        "head",
        "out",
        "pending",
        "process",
        "size",
        "tasks",
        "waiting",
        "workers",
    )

    def __init__(self, workers: WorkerSet, process: Any, tasks: Connection, answers: Connection):
        self.workers = workers
        self.process = process
        self.tasks = tasks  # the main process's ends
        self.answers = answers
        self.out: deque[memoryview] = deque()  # task bytes the pipe had no room for yet
        self.head = bytearray()  # the next answer's length, as far as it has come
        # The answer being read: its ``size`` (None: its length not read yet), ``filled`` bytes
        # of it in ``buffer`` so far. One buffer a worker, as large as its largest answer: a
        # fresh one for every answer was zero-filled first (bytearray(size)), ~1.2 K
        # instructions a wide row in the main process.
        self.buffer = bytearray()
        self.size: int | None = None
        self.filled = 0
        self.waiting: deque[Ticket] = deque()  # in the order of the tasks written
        self.pending = 0  # the weight of the tasks in ``waiting``
        self.dead: AbortError | None = None

    def flush(self) -> None:
        out, fd = self.out, self.tasks.fileno()
        while out:
            try:
                written = os.write(fd, out[0])
            except BlockingIOError:
                return
            except OSError:  # EPIPE: the worker is gone
                self.died()
                return
            if written == len(out[0]):
                out.popleft()
            else:
                out[0] = out[0][written:]

    def receive(self) -> None:
        """Read what the pipe holds: an answer's length, then the answer straight into the
        receive buffer (one copy, where joining what each read returned took four)."""
        fd = self.answers.fileno()
        try:
            while True:
                size = self.size
                if size is None:
                    size = self.size = self._length(fd)
                    if size is None:
                        return
                    if len(self.buffer) < size:
                        self.buffer = bytearray(size)
                if self.filled < size:
                    with memoryview(self.buffer) as view:
                        got = os.readv(fd, (view[self.filled : size],))
                    if not got:  # the end of the pipe: the worker is gone
                        self.died()
                        return
                    self.filled += got
                    if self.filled < size:
                        return
                self._answered(size)
        except BlockingIOError:
            return
        except OSError:
            self.died()

    def _answered(self, size: int) -> None:
        """The answer in the buffer's first ``size`` bytes, decoded for the oldest ticket (now:
        the buffer takes the next answer); what fails to decode is raised by its ``result()``."""
        ticket = self.waiting.popleft()
        self.pending -= ticket.weight
        self.size, self.filled = None, 0
        with memoryview(self.buffer) as view, view[:size] as data:
            try:
                ticket._answer = answer_of(data)
            except Exception as exc:
                ticket._answer = exc
        if size > KEEP_BUFFER_BYTES:
            self.buffer = bytearray()

    def _length(self, fd: int) -> int | None:
        """The next answer's length once it has been read (None: not yet)."""
        head = self.head
        while len(head) < 4 or (len(head) < 12 and head[:4] == _MORE):
            data = os.read(fd, (4 if len(head) < 4 else 12) - len(head))
            if not data:
                self.died()
                return None
            head += data
        size: int = LENGTH.unpack_from(head)[0]
        if size == -1:
            size = _LONG.unpack_from(head, 4)[0]
        head.clear()
        return size

    def died(self) -> None:
        if self.dead is not None:
            return
        with contextlib.suppress(Exception):
            self.process.join(1)
        code = self.process.exitcode
        self.dead = AbortError(
            f"a conversion worker process died (exit code {code}); `braze-import resume` goes on"
        )
        while self.waiting:
            self.waiting.popleft()._answer = self.dead
        self.out.clear()
        self.workers.dead = self.workers.dead or self.dead
        self.workers.forget(self)
