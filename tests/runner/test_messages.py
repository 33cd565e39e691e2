"""A task's and an answer's bytes (importer.runner.messages), and answers over real workers."""

from __future__ import annotations

import pickle
from multiprocessing import get_context
from typing import Any

from importer.models import RowFailure, RowRef
from importer.runner.channels import Workers
from importer.runner.messages import answer_bytes, answer_of
from tests.runner.test_channels import _echo, _serve

WIDE = (
    True,
    (False, [2, 3], [("external_id:1", ((b'{"a":1}',), (b'{"e":1}', b'{"e":2}'), ()), None, None)]),
    "",
)
FAILURE = RowFailure(RowRef("a.csv", 4), "convert", "bad_value", "not a number", None)


def test_a_plain_answer_travels_as_marshal_and_reads_back_equal() -> None:
    data = answer_bytes(WIDE, True)
    assert data[0] != pickle.PROTO[0]  # not pickled
    assert answer_of(bytearray(data)) == WIDE  # as the pipe's reader hands it over


def test_a_plain_answer_marshal_refuses_is_pickled_whole() -> None:
    answer = (True, (False, [2, 3], [WIDE[1][2][0], FAILURE]), "")
    data = answer_bytes(answer, True)
    assert data[0] == pickle.PROTO[0]
    assert answer_of(data) == answer


def test_an_answer_not_plain_keeps_its_bytes_like_objects() -> None:
    # marshal would write the bytearray as bytes: only the caller can say there is none
    answer = (True, [bytearray(b"digest"), memoryview(b"x").tobytes()], "")
    back = answer_of(answer_bytes(answer, False))
    assert back == answer and type(back[1][0]) is bytearray


def test_workers_answer_plain_and_other_tasks_alike() -> None:
    workers = Workers(2, get_context("fork"), _serve, ())
    values: list[Any] = [WIDE[1], [FAILURE], {"k": bytearray(b"v")}]
    try:
        for plain in (True, False):
            tickets = [workers.submit(_echo, value, plain=plain) for value in values]
            assert [ticket.result() for ticket in tickets] == values
        assert type(workers.submit(_echo, values[2], plain=False).result()["k"]) is bytearray
    finally:
        workers.close()
