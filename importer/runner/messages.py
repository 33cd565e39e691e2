"""The bytes of a task and of its answer, and a worker's side of the pipes (``serve``);
importer.runner.channels moves them between the processes.

A task is a pickled ``(function, args, plain)``, an answer ``(ok, value, traceback)``. An answer
the caller marks ``plain`` (only objects marshal writes as they are: no ``--state``, whose
digests need not be) is written by marshal, or by pickle when marshal refuses an object in it
(a row's failure, an exception). Marshal keeps no memo of every object it writes: 2,000 wide
rows' answers written and read, callgrind, 11.0 K instructions a row with pickle, 7.5 K with
marshal (the worker writing ~3.2 K less, the main process reading ~0.3 K less).
"""

from __future__ import annotations

import contextlib
import marshal
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_PICKLED = 0x80  # pickle's first byte from protocol 2 on (PROTO); never marshal's (a type code)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (the cause of the one raised here)."""

    def __str__(self) -> str:
        return str(self.args[0])


def task_bytes(function: Callable[..., Any], args: tuple[Any, ...], plain: bool) -> bytes:
    return pickle.dumps((function, args, plain), pickle.HIGHEST_PROTOCOL)


def answer_bytes(answer: tuple[bool, Any, str], plain: bool) -> bytes:
    """An answer's bytes: marshal when ``plain`` and marshal takes every object in it (it raises
    ValueError at the first it does not: a dataclass, an exception), else pickle. Marshal would
    write any bytes-like object as bytes: hence ``plain``, the caller's word that there is none."""
    if plain:
        with contextlib.suppress(ValueError):
            return marshal.dumps(answer, 4)
    return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)


def answer_of(data: bytes | bytearray | memoryview) -> tuple[bool, Any, str]:
    """What ``answer_bytes`` wrote."""
    if data[0] == _PICKLED:
        return pickle.loads(data)  # type: ignore[no-any-return]
    return marshal.loads(data)  # type: ignore[no-any-return]


def serve(tasks: Connection, answers: Connection) -> None:
    """A worker's loop: run each task, write its answer; end when the main process closes the
    task pipe or stops reading answers."""
    while True:
        try:
            function, args, plain = pickle.loads(tasks.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            answer = (True, function(*args), "")
        except Exception as exc:
            answer, plain = (False, exc, traceback.format_exc()), False
        try:
            data = answer_bytes(answer, plain)
        except Exception as exc:  # an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(repr(exc)), traceback.format_exc()))
        try:
            answers.send_bytes(data)
        except OSError:
            return
