"""What a conversion worker process runs (importer.runner.pool starts them and joins their answers).

A worker is started once (``start_worker``: converters built, SIGINT ignored, bound to die with
the main process) and then answers chunks of records (``convert_chunk``) or ranges of a CSV
file's raw lines (``convert_range``): each row converted, checked, hashed for ``--state`` and
serialised, the answer being what the main process needs and no more (with ``--state``, a row
the state file shows unchanged: its verdict alone, importer.state.snapshot).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from hashlib import blake2b
from multiprocessing.connection import Connection
from typing import Any, Protocol

from importer.config import VERSION
from importer.convert import Converter
from importer.mapping import CompiledMapping, default_mapping, mapping_from_text
from importer.models import CsvRecord, Item, RowFailure, RowRef, RowSkipped, SourceRow
from importer.read import CsvLayout, LineIssue, parse_range
from importer.runner.channels import serve
from importer.runner.worker_process import die_with
from importer.send import attributes_json, wire_of
from importer.state import converted, is_verdict, salt

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h (glibc)
_KEEP_BYTES = 64 * 1024 * 1024  # at most this much freed memory kept per process


class Digests(Protocol):
    """What --state makes of a task's items where they are made (importer.state.StateView):
    per item its digests, or a verdict when nothing of it is new; ``values``: whether to hash
    every attribute value where it cannot tell which rows need it."""

    def digests(
        self,
        items: Sequence[Item],
        values: bool,
        fragments: Sequence[tuple[bytes, ...] | None] | None = None,
    ) -> Sequence[Any]: ...

    def recognise(self, keys: Sequence[bytes | None]) -> Sequence[Any]: ...


Outcome = Item | RowFailure | RowSkipped
# A worker's answer for one row: (user, wire, digests, operations key, row key) for an Item,
# else the failure (its record left out: the main process has it) or the skip.
Answer = tuple[str, Any, Any, str | None, bytes | None] | RowFailure | RowSkipped


@dataclass(frozen=True, slots=True)
class ConverterSpec:
    """How a worker builds one source's converter: from the text of the mapping the main
    process loaded (not the file, which may have changed since), or the default mapping of
    the source's header; ``wire`` as the main process's converters (``Converter.to_wire``),
    decided with them (importer.runner.entry): no --state."""

    source: str
    mapping_path: str | None = None
    mapping_text: str | None = None
    header: tuple[str, ...] | None = None
    wire: bool = True

    @classmethod
    def of(
        cls,
        mapping: CompiledMapping | None,
        source: str,
        header: Sequence[str] | None,
        *,
        wire: bool,
    ) -> ConverterSpec:
        if mapping is None:
            return cls(source, header=None if header is None else tuple(header), wire=wire)
        return cls(source, mapping_path=mapping.path, mapping_text=mapping.text, wire=wire)

    def salt(self, header: tuple[str, ...] | None) -> blake2b:
        """What besides a row's cells decides what it converts to (importer.state.row_keys):
        the importer's version, the mapping's text (the default mapping: the header it was made
        of) and the header the cells are read by. Not the source's name: a default mapping
        names it in errors only, and a nightly export is often named by its date."""
        return salt(VERSION, self.mapping_text, self.header, header)

    def build(self) -> Converter:
        if self.mapping_text is not None:
            mapping = mapping_from_text(self.mapping_path or "", self.mapping_text)
            return Converter(mapping, wire=self.wire)
        return Converter(default_mapping(self.header, self.source), wire=self.wire)


_converters: list[Converter] = []
_digests: Digests | None = None
# Each chunk's header arrives as a new tuple; the converter knows a header by identity (it
# generates a source's code once per header), so the worker hands it the first equal one.
_headers: dict[tuple[str, ...], tuple[str, ...]] = {}
_layouts: dict[CsvLayout, CsvLayout] = {}  # the same for a range's layout
_specs: Sequence[ConverterSpec] = ()
_hashers: dict[tuple[int, tuple[str, ...] | None], blake2b] = {}  # per source and header


def run_worker(
    tasks: Connection, answers: Connection, closing: Sequence[Connection], parent: int
) -> None:
    """A worker process's life (importer.runner.channels starts it): close the main process's
    ends of the pipes it inherited, get ready, answer tasks until the pipes close. Its first
    task is ``configured``: the pool may start before the sources are opened
    (importer.runner.pool), so what it converts arrives over the pipe."""
    for end in closing:
        end.close()
    start_worker((), None, parent)
    serve(tasks, answers)


def start_worker(specs: Sequence[ConverterSpec], digests: Digests | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setprofile(None)  # a profiler of the main process is not forked along
    die_with(parent)
    import gc

    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the main process runs (importer.runner.entry)
    keep_freed_memory()
    configure(specs, digests)


def configure(specs: Sequence[ConverterSpec], digests: Digests | None) -> None:
    """Build the converters of the attempt's sources (and its --state view)."""
    global _digests, _specs
    _converters[:] = [spec.build() for spec in specs]
    _digests, _specs = digests, specs
    _hashers.clear()  # salted by the specs it was given before, if any


def configured(specs: Sequence[ConverterSpec], digests: Digests | None) -> None:
    """``configure`` as a worker's first task. A worker that cannot build its converters ends
    (exit 1, its traceback on stderr), as one whose start failed did: every task handed to it
    then fails with the pool's AbortError, never with a missing converter."""
    try:
        configure(specs, digests)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def keep_freed_memory() -> None:
    """Have malloc keep what is freed for the next range instead of giving it back at once.

    Each range's bytes, answers and pickles (~1 MB) are allocated and freed again; glibc
    returned the top of the heap (and any block over its mmap threshold) to the system every
    time, and the next range faulted every page in again: ~100,000 page faults per 60,000
    rows, a tenth of the workers' CPU in the kernel. Not glibc (or no libc found): nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES // 2)


def convert_chunk(
    source: int,
    name: str,
    header: tuple[str, ...] | None,
    rows: list[tuple[int, Any]],
    values: bool = True,
) -> list[Answer]:
    """Convert one chunk of a source: (line, cells or record dict) pairs -> answers. ``values``:
    whether --state wants each attribute's digest too (importer.state.DeltaStage.wants_values)."""
    convert = _converters[source].convert
    if header is not None:
        header = _headers.setdefault(header, header)
    if _digests is not None:  # --state: rows it remembers are not converted
        made = [SourceRow(RowRef(name, line), _record(header, data)) for line, data in rows]
        outcomes = converted(made, _hasher(source, header), _digests.recognise, convert)
        return _answers(outcomes, values)  # type: ignore[return-value]  # no None among them
    rows_of = (SourceRow(RowRef(name, line), _record(header, data)) for line, data in rows)
    return [_plain(convert(row)) for row in rows_of]  # type: ignore[misc]  # no None among them


def _record(header: tuple[str, ...] | None, data: Any) -> Any:
    return data if header is None else CsvRecord(header, data)


def _hasher(source: int, header: tuple[str, ...] | None) -> blake2b:
    """Source ``source``'s row key hasher for rows read by ``header`` (made once)."""
    found = _hashers.get((source, header))
    if found is None:
        found = _hashers[source, header] = _specs[source].salt(header)
    return found


def _plain(out: Outcome | None) -> Answer | None:
    """A row's answer without digests; a failure without its record (the main process has the
    lines), a read failure whole (it has no line to parse again)."""
    if out.__class__ is Item:
        item: Item = out
        wire = item.wire  # made by the row function (``Converter.to_wire``), else made here
        return (item.user, wire_of(item) if wire is None else wire, None, item.operations, None)
    if isinstance(out, RowFailure) and out.stage != "read":
        return replace(out, record=None)
    return out  # type: ignore[return-value]  # a skip or None


def _answers(outcomes: list[Outcome | None], values: bool) -> list[Answer | None]:
    """The answers to a task's outcomes (None stays None): an item's digests are made for all
    of them at once, as the state looks a chunk up at once; an item the state found unchanged
    is answered by its verdict alone (see importer.state.snapshot), as is one it remembers
    (importer.state.row_keys: not converted, it carries its verdict already)."""
    items = [out for out in outcomes if out.__class__ is Item and out.digests is None]
    state = _digests
    # Each attributes object serialised once: its whole digest hashes the wire's bytes.
    fragments = [attributes_json(item) for item in items] if state is not None else []
    digests = iter(state.digests(items, values, fragments)) if state is not None and items else None
    made = iter(fragments)
    answers: list[Answer | None] = []
    for out in outcomes:
        if out.__class__ is not Item:
            answers.append(_plain(out))
            continue
        item: Item = out
        if item.digests is not None:  # recognised by its key: stored already
            answers.append((item.user, None, item.digests, None, None))
            continue
        found = next(digests)  # type: ignore[arg-type]  # made for every such item
        attributes = next(made)
        if is_verdict(found):  # nothing of the row will be sent; its key is new
            answers.append((item.user, None, found, None, item.row_key))
        else:
            wire = wire_of(item, attributes)
            answers.append((item.user, wire, found, item.operations, item.row_key))
    return answers


def convert_range(
    source: int,
    layout: CsvLayout,
    first_line: int,
    data: bytes,
    issues: tuple[LineIssue, ...],
    settled: frozenset[int],
    values: bool = True,
) -> tuple[bool, list[int], list[str | None], list[Any]]:
    """Parse and convert one range of a CSV source (importer.read.csv_ranges): whether its
    parser was dirty (then nothing else), and each record's line, user and answer. An item
    with only its user and objects to tell (no --state, no ``[operations] key``) is answered
    by its user and wire alone (a tuple a row cost both processes ~0.5 K instructions); any
    other record's user is None and its answer whole: a settled line's (resume) None, a read
    failure whole, a row's failure without its record (the main process has the lines)."""
    layout = _layouts.setdefault(layout, layout)  # its header: the converter's cache key
    parser = parse_range(layout, first_line, data, issues)
    convert = _converters[source].convert
    # Without --state, a row's whole answer at once, while its objects are still in the cache:
    # converting a whole range first and serialising after cost a wide --dry-run with workers
    # ~15% more CPU. With --state, the rows first: the state looks a range up at once.
    todo: list[tuple[int, SourceRow]] | None = None if _digests is None else []
    lines: list[int] = []
    users: list[str | None] = []
    outcomes: list[Any] = []
    for row in parser.records():
        if parser.dirty:
            return True, [], [], []
        line = row.ref.line
        lines.append(line)
        user: str | None = None
        answer: Any = None
        if line in settled:
            pass
        elif row.__class__ is not SourceRow and isinstance(row, RowFailure):  # see engine._pooled
            answer = row if todo is not None else _plain(row)
        elif todo is not None:
            todo.append((len(outcomes), row))
        else:
            out = convert(row)
            if out.__class__ is Item and out.operations is None:
                user, answer = out.user, out.wire if out.wire is not None else wire_of(out)
            else:
                answer = _plain(out)
        users.append(user)
        outcomes.append(answer)
    if parser.dirty:
        return True, [], [], []
    if todo is None:
        return False, lines, users, outcomes
    if todo and _digests is not None:
        hasher = _hasher(source, layout.header)
        made = converted([row for _, row in todo], hasher, _digests.recognise, convert)
        for (n, _), out in zip(todo, made, strict=True):
            outcomes[n] = out
    return False, lines, users, _answers(outcomes, values)
