"""Worker processes fed through one pipe each way, written and read by the main thread alone.

``concurrent.futures.ProcessPoolExecutor`` runs two threads in the main process: a feeder that
pickles and writes each task and a manager that reads and unpickles each answer. Both take the
GIL from the main thread, which is the one that caps a run (it reads, packs, sends); each
``submit`` also woke the manager through a pipe and the main thread then waited for the GIL
back (py-spy: ~15% of the main thread's samples of a wide ``--dry-run`` in that write). Here a
task goes to the worker with the least work handed over and not answered yet (by the caller's
``weight``: a range's lines; in turn it was uneven, as a file's ranges alternate long and
short), each answer comes back on its worker's own pipe in the order of its tasks, and the
main thread moves the bytes when it looks (``Ticket.done``, ``Ticket.result``, ``Ticket.wait``):
non-blocking writes, so a full pipe never stalls it, and no thread at all.

How a task and its answer are written, and the worker's side of the pipes: importer.runner
.messages.

A worker that dies (killed, out of memory) closes its answer pipe: the tickets it held fail
with an AbortError, as the executor's ``BrokenProcessPool`` did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import struct
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from importer.errors import AbortError
from importer.runner.messages import RemoteTraceback as RemoteTraceback
from importer.runner.messages import answer_of, task_bytes
from importer.runner.messages import serve as serve  # what a worker runs (importer.runner.worker)

_LENGTH = struct.Struct("!i")  # multiprocessing.connection's framing, which the workers use
_LONG = struct.Struct("!Q")  # after a length of -1: a message of 2 GiB or more
_MORE = _LENGTH.pack(-1)
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size: room for a whole range's answer


class Ticket:
    """One task's answer, once its worker's pipe has brought it."""

    __slots__ = ("_answer", "_worker", "weight")

    def __init__(self, worker: _Worker, weight: int) -> None:
        self._worker = worker
        self.weight = weight
        self._answer: bytearray | BaseException | None = None

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
        ok, value, trace = answer_of(answer)
        if not ok:
            raise value from RemoteTraceback(trace)
        return value


class _Worker:
    __slots__ = (
        "answers",
        "dead",
        "filled",
        "frame",
        "head",
        "out",
        "pending",
        "process",
        "tasks",
        "waiting",
        "workers",
    )

    def __init__(self, workers: Workers, process: Any, tasks: Connection, answers: Connection):
        self.workers = workers
        self.process = process
        self.tasks = tasks  # the main process's ends
        self.answers = answers
        self.out: deque[memoryview] = deque()  # task bytes the pipe had no room for yet
        self.head = bytearray()  # the next answer's length, as far as it has come
        self.frame: bytearray | None = None  # the answer being read, ``filled`` bytes so far
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
        """Read what the pipe holds: an answer's length, then the answer straight into a buffer
        of that size (one copy, where joining what each read returned took four)."""
        fd = self.answers.fileno()
        try:
            while True:
                frame = self.frame
                if frame is None:
                    frame = self.frame = self._frame(fd)
                    if frame is None:
                        return
                filled = self.filled + os.readv(fd, (memoryview(frame)[self.filled :],))
                if filled == self.filled:  # the end of the pipe: the worker is gone
                    self.died()
                    return
                self.filled = filled
                if filled < len(frame):
                    return
                ticket = self.waiting.popleft()
                ticket._answer = frame
                self.pending -= ticket.weight
                self.frame, self.filled = None, 0
        except BlockingIOError:
            return
        except OSError:
            self.died()

    def _frame(self, fd: int) -> bytearray | None:
        """The buffer for the next answer once its length has been read (None: not yet)."""
        head = self.head
        while len(head) < 4 or (len(head) < 12 and head[:4] == _MORE):
            data = os.read(fd, (4 if len(head) < 4 else 12) - len(head))
            if not data:
                self.died()
                return None
            head += data
        (size,) = _LENGTH.unpack_from(head)
        if size == -1:
            (size,) = _LONG.unpack_from(head, 4)
        head.clear()
        return bytearray(size)

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


class Workers:
    """``count`` processes, each running ``serve(tasks, answers, closing, *args)``: tasks are
    pickled ``(function, args)`` pairs, answers pickled ``(ok, value, traceback)``."""

    def __init__(
        self, count: int, context: BaseContext, serve: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        self._poll = select.poll()
        self._reading: dict[int, _Worker] = {}  # answer pipes
        self._writing: dict[int, _Worker] = {}  # task pipes with bytes waiting for room
        self._workers: list[_Worker] = []
        self.dead: AbortError | None = None  # the first worker's death: no task is taken after
        parent_ends: list[Connection] = []
        for _ in range(count):
            task_reader, task_writer = context.Pipe(duplex=False)
            answer_reader, answer_writer = context.Pipe(duplex=False)
            parent_ends += (task_writer, answer_reader)
            # A forked worker inherits the main process's ends of every pipe so far: it closes
            # them, or a worker would never see its pipe close (nor the main process a death).
            closing = list(parent_ends)
            process = context.Process(  # type: ignore[attr-defined]
                target=serve,
                args=(task_reader, answer_writer, closing, *args),
                name=f"braze-import-worker-{len(self._workers) + 1}",
                daemon=True,
            )
            process.start()
            task_reader.close()
            answer_writer.close()
            for end in (task_writer, answer_reader):
                _widen(end)
                os.set_blocking(end.fileno(), False)
            worker = _Worker(self, process, task_writer, answer_reader)
            self._workers.append(worker)
            self._reading[answer_reader.fileno()] = worker
            self._poll.register(answer_reader.fileno(), select.POLLIN)

    def submit(
        self, function: Callable[..., Any], *args: Any, weight: int = 1, plain: bool = False
    ) -> Ticket:
        """Hand ``function(*args)`` to the worker with the least ``weight`` of work pending;
        ``plain``: its answer may travel as marshal (importer.runner.messages), as it holds no
        object marshal would write as another type (a bytes-like object as bytes)."""
        self.pump(0)  # answers that came in lighten their workers
        worker = min(self._workers, key=_pending)
        worker.pending += weight
        ticket = Ticket(worker, weight)
        if self.dead is not None:  # as the executor's pool was broken by one death
            ticket._answer = self.dead
            return ticket
        payload = task_bytes(function, args, plain)
        worker.waiting.append(ticket)
        had_out = bool(worker.out)
        worker.out += (memoryview(_LENGTH.pack(len(payload))), memoryview(payload))
        if not had_out:
            worker.flush()
            if worker.out:
                self._poll.register(worker.tasks.fileno(), select.POLLOUT)
                self._writing[worker.tasks.fileno()] = worker
        return ticket

    def pump(self, timeout: float | None) -> None:
        """Move what the pipes allow now (``timeout`` 0), or wait until something moved."""
        millis = None if timeout is None else int(timeout * 1000)
        for fd, _ in self._poll.poll(millis):
            if (worker := self._reading.get(fd)) is not None:
                worker.receive()
            elif (worker := self._writing.get(fd)) is not None:
                worker.flush()
                if not worker.out:
                    self._unwatch(fd)

    async def wait_for(self, ticket: Ticket) -> None:
        """Wait for ``ticket`` without holding up the event loop."""
        loop = asyncio.get_running_loop()
        while not ticket.done():
            moved = loop.create_future()

            def wake(moved: asyncio.Future[None] = moved) -> None:
                if not moved.done():
                    moved.set_result(None)

            reading, writing = list(self._reading), list(self._writing)
            for fd in reading:
                loop.add_reader(fd, wake)
            for fd in writing:
                loop.add_writer(fd, wake)
            try:
                await moved
            finally:
                for fd in reading:
                    loop.remove_reader(fd)
                for fd in writing:
                    loop.remove_writer(fd)

    def _unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError):
            self._poll.unregister(fd)
        self._reading.pop(fd, None)
        self._writing.pop(fd, None)

    def forget(self, worker: _Worker) -> None:
        for end in (worker.tasks, worker.answers):
            if not end.closed:
                self._unwatch(end.fileno())

    def close(self) -> None:
        """Close the pipes (a worker then ends, after its current task at most) and reap."""
        stopped = AbortError("the conversion workers were stopped")
        for worker in self._workers:
            worker.dead = worker.dead or stopped
            while worker.waiting:  # never to be answered: a late result() must not wait
                worker.waiting.popleft()._answer = stopped
            self.forget(worker)
            worker.tasks.close()
            worker.answers.close()
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
        self._workers = []


def _pending(worker: _Worker) -> int:
    return worker.pending


def _widen(end: Connection) -> None:
    """Room in the pipe for a whole answer (Linux only; elsewhere the pipe stays as it is)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(end.fileno(), setpipe, PIPE_BYTES)
