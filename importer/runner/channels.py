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
.messages; one worker's pipes in the main process and a task's ticket: importer.runner
.worker_pipes.

A worker that dies (killed, out of memory) closes its answer pipe: the tickets it held fail
with an AbortError, as the executor's ``BrokenProcessPool`` did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from importer.errors import AbortError
from importer.runner.messages import RemoteTraceback as RemoteTraceback
from importer.runner.messages import serve as serve  # what a worker runs (importer.runner.worker)
from importer.runner.messages import task_bytes
from importer.runner.worker_pipes import LENGTH, Ticket, WorkerPipes

PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size: room for a whole range's answer


class Workers:
    """``count`` processes, each running ``serve(tasks, answers, closing, *args)``: tasks are
    pickled ``(function, args)`` pairs, answers pickled ``(ok, value, traceback)``."""

    def __init__(
        self, count: int, context: BaseContext, serve: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        self._poll = select.poll()
        self._reading: dict[int, WorkerPipes] = {}  # answer pipes
        self._writing: dict[int, WorkerPipes] = {}  # task pipes with bytes waiting for room
        self._workers: list[WorkerPipes] = []
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
            worker = WorkerPipes(self, process, task_writer, answer_reader)
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
        return self._hand(min(self._workers, key=_pending), function, args, weight, plain)

    def each(self, function: Callable[..., Any], *args: Any) -> list[Ticket]:
        """Hand ``function(*args)`` to every worker, ahead of what is handed to it later."""
        return [self._hand(worker, function, args, 0, False) for worker in self._workers]

    def _hand(
        self,
        worker: WorkerPipes,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        weight: int,
        plain: bool,
    ) -> Ticket:
        worker.pending += weight
        ticket = Ticket(worker, weight)
        if self.dead is not None:  # as the executor's pool was broken by one death
            ticket._answer = self.dead
            return ticket
        payload = task_bytes(function, args, plain)
        worker.waiting.append(ticket)
        had_out = bool(worker.out)
        worker.out += (memoryview(LENGTH.pack(len(payload))), memoryview(payload))
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

    def forget(self, worker: WorkerPipes) -> None:
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


def _pending(worker: WorkerPipes) -> int:
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
