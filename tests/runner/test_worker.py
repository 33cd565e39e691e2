"""importer.runner.worker: what a conversion worker answers for each row."""

from __future__ import annotations

import os
from dataclasses import replace
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any

from importer.convert import Converter
from importer.mapping import mapping_from_text
from importer.models import CsvRecord, Item, RowFailure, RowRef, SourceRow
from importer.runner import worker
from importer.send import wire_of

MAPPING = """
[identity]
external_id = "id"

[attributes]
visits = { column = "visits", type = "integer" }
plan = { column = "plan", map = { p = "pro", f = "free" } }

[[events]]
name = { value = "login" }
time = "at"
"""
HEADER = ("id", "visits", "plan", "at")
ROWS = [
    (2, ["u1", "7", "p", "2024-03-01T10:00:00Z"]),
    (3, ["u2", "x", "f", ""]),  # fails at convert
    (4, ["", "1", "", ""]),  # no identifier: left to the converter's steps
    (5, ["u3", "", "", ""]),  # nothing to send
]


def _as_a_worker(there: Connection, parent: int) -> None:
    """Start as the pool starts a worker without --state, then hand back what its converter
    made of the first row and the answers to a chunk of ``ROWS``."""
    worker.start_worker([worker.ConverterSpec("s.csv", "m.toml", MAPPING)], None, parent)
    line, cells = ROWS[0]
    item = worker._converters[0].convert(SourceRow(RowRef("s.csv", line), CsvRecord(HEADER, cells)))
    assert isinstance(item, Item)
    made = (item.attributes, item.events, item.purchases, item.wire)
    there.send((made, worker.convert_chunk(0, "s.csv", HEADER, ROWS)))
    there.close()


def _answer(out: Any) -> Any:
    """The answer a worker made of a converted row before it converted to JSON itself."""
    if isinstance(out, Item):
        return (out.user, wire_of(out), None, out.operations, None)
    return replace(out, record=None) if isinstance(out, RowFailure) else out


def test_a_worker_without_state_answers_the_json_its_converter_made() -> None:
    """Without --state a worker's converter makes a CSV row's objects as JSON only (its dicts
    are never kept: Converter.to_wire) and the answer carries those bytes: the very bytes, and
    every failure and skip, the worker answered when it serialised the dicts itself."""
    here, there = get_context("fork").Pipe(duplex=False)
    process = get_context("fork").Process(target=_as_a_worker, args=(there, os.getpid()))
    process.start()
    there.close()
    (attributes, events, purchases, wire), answers = here.recv()
    process.join()
    assert process.exitcode == 0
    assert (attributes, events, purchases) == ((), (), ()) and wire is not None
    steps = Converter(mapping_from_text("m.toml", MAPPING))
    expected = [
        _answer(steps.convert(SourceRow(RowRef("s.csv", line), CsvRecord(HEADER, cells))))
        for line, cells in ROWS
    ]
    assert answers == expected
    assert answers[0][1] == wire
    assert [type(a).__name__ for a in answers] == [
        "tuple",
        "RowFailure",
        "RowFailure",
        "RowSkipped",
    ]
