"""The worker processes' pipes (importer.runner.channels), over real processes and pipes."""

from __future__ import annotations

import asyncio
import os
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any

import pytest

from importer.errors import AbortError
from importer.runner.channels import PIPE_BYTES, RemoteTraceback, Workers, serve


def _serve(tasks: Connection, answers: Connection, closing: list[Connection]) -> None:
    for end in closing:
        end.close()
    serve(tasks, answers)


def _echo(value: Any) -> Any:
    return value


def _pid() -> int:
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


def test_tasks_go_to_the_workers_in_turn_and_answers_come_back_in_order(workers: Workers) -> None:
    tickets = [workers.submit(_pid) for _ in range(6)]
    pids = [ticket.result() for ticket in tickets]
    assert pids[0] != pids[1]
    assert pids == pids[:2] * 3
    assert [workers.submit(_echo, n).result() for n in range(5)] == list(range(5))


def test_tasks_larger_than_the_pipes_never_block_the_main_process(workers: Workers) -> None:
    # Three tasks per worker, each several pipe-fulls: submit writes what fits and returns.
    data = [bytes([n]) * (3 * PIPE_BYTES) for n in range(6)]
    tickets = [workers.submit(_echo, d) for d in data]
    assert [ticket.result() for ticket in tickets] == data


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


def test_a_worker_that_dies_fails_its_tasks_with_an_abort(workers: Workers) -> None:
    first, died, after = workers.submit(_echo, 0), workers.submit(_exit), workers.submit(_echo, 2)
    assert first.result() == 0
    with pytest.raises(AbortError, match=r"a conversion worker process died \(exit code 3\)"):
        died.result()
    assert after.result() == 2  # the other worker's
    with pytest.raises(AbortError, match="died"):
        workers.submit(_echo, 3).result()  # the dead one's turn again


def test_closing_with_tasks_pending_ends_every_worker(workers: Workers) -> None:
    data = b"y" * (3 * PIPE_BYTES)
    for _ in range(6):
        workers.submit(_echo, data)  # answers nobody reads: the workers block writing them
    processes = [worker.process for worker in workers._workers]
    workers.close()
    assert all(process.exitcode is not None for process in processes)
