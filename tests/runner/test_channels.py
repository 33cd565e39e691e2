"""The worker processes' pipes (importer.runner.channels), over real processes and pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any

import pytest

from importer.errors import AbortError
from importer.runner.channels import PIPE_BYTES, RemoteTraceback, Workers, serve
from importer.runner.worker_pipes import KEEP_BUFFER_BYTES


def _serve(tasks: Connection, answers: Connection, closing: list[Connection]) -> None:
    for end in closing:
        end.close()
    serve(tasks, answers)


def _echo(value: Any) -> Any:
    return value


def _pid() -> int:
    return os.getpid()


def _pid_after(gate: int) -> int:
    os.read(gate, 2)
    return os.getpid()


def _exit() -> None:
    os._exit(3)  # as a worker killed by the OOM killer, without a word


def _fail() -> None:
    raise ValueError("a bug in a worker")


@pytest.fixture
def workers() -> Any:
    pool = Workers(2, get_context("fork"), _serve, ())
    yield pool
    pool.close()


def test_a_task_goes_to_the_worker_with_the_least_work_pending() -> None:
    gate_out, gate_in = os.pipe()  # the first task waits on it: its worker stays busy
    workers = Workers(2, get_context("fork"), _serve, ())
    try:
        busy = workers.submit(_pid_after, gate_out, weight=10)
        light = [workers.submit(_pid) for _ in range(3)]
        os.write(gate_in, b"go")
        pids = [ticket.result() for ticket in light]
        assert len(set(pids)) == 1  # all three to the other worker, which had 0, 1, 2 to do
        assert busy.result() not in pids
        assert [workers.submit(_echo, n).result() for n in range(5)] == list(range(5))
    finally:
        workers.close()
        os.close(gate_out)
        os.close(gate_in)


def test_tasks_larger_than_the_pipes_never_block_the_main_process(workers: Workers) -> None:
    # Three tasks per worker, each several pipe-fulls: submit writes what fits and returns.
    data = [bytes([n]) * (3 * PIPE_BYTES) for n in range(6)]
    tickets = [workers.submit(_echo, d) for d in data]
    assert [ticket.result() for ticket in tickets] == data


def test_answers_read_ahead_of_their_results_stay_whole_in_one_reused_buffer() -> None:
    # One worker: every answer comes through the same receive buffer, the earlier ones read
    # before anyone asks for their results.
    workers = Workers(1, get_context("fork"), _serve, ())
    try:
        data = [b"a" * (KEEP_BUFFER_BYTES + 1), b"b", b"c" * 600_000, b"d" * 10]
        tickets = [workers.submit(_echo, d) for d in data]
        assert tickets[3].result() == data[3]  # every answer read by now
        assert [ticket.result() for ticket in tickets] == data
        buffer = workers._workers[0].buffer
        assert 600_000 <= len(buffer) < KEEP_BUFFER_BYTES  # kept for the small one, not a large one
    finally:
        workers.close()


def test_waiting_in_the_event_loop(workers: Workers) -> None:
    data = b"x" * (2 * PIPE_BYTES)

    async def main() -> list[Any]:
        tickets = [workers.submit(_echo, data) for _ in range(4)]
        for ticket in tickets:
            await ticket.wait()
            assert ticket.done()
        return [ticket.result() for ticket in tickets]

    assert asyncio.run(main()) == [data] * 4


def test_a_workers_exception_is_raised_in_the_main_process_with_its_traceback(
    workers: Workers,
) -> None:
    with pytest.raises(ValueError, match="a bug in a worker") as caught:
        workers.submit(_fail).result()
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "_fail" in str(caught.value.__cause__)
    assert workers.submit(_echo, 1).result() == 1  # the worker goes on


def test_a_worker_that_dies_fails_its_tasks_and_every_later_one_with_an_abort(
    workers: Workers,
) -> None:
    assert workers.submit(_echo, 0).result() == 0
    died = workers.submit(_exit)
    with pytest.raises(AbortError, match=r"a conversion worker process died \(exit code 3\)"):
        died.result()
    with pytest.raises(AbortError, match="died"):
        workers.submit(_echo, 3).result()


def test_closing_with_tasks_pending_ends_every_worker(workers: Workers) -> None:
    data = b"y" * (3 * PIPE_BYTES)
    for _ in range(6):
        workers.submit(_echo, data)  # answers nobody reads: the workers block writing them
    processes = [worker.process for worker in workers._workers]
    workers.close()
    assert all(process.exitcode is not None for process in processes)


def _take_tasks_and_never_answer(
    tasks: Connection, answers: Connection, closing: list[Any]
) -> None:
    for end in closing:
        end.close()
    with contextlib.suppress(EOFError):
        while tasks.recv_bytes():
            pass


def test_a_task_never_answered_before_closing_fails_instead_of_waiting() -> None:
    workers = Workers(1, get_context("fork"), _take_tasks_and_never_answer, ())
    ticket = workers.submit(_echo, 1)
    workers.close()
    with pytest.raises(AbortError, match="stopped"):
        ticket.result()
