"""Binding values to the state file's statements: digests as ``bytearray`` (``blobs``), and
many rows to one INSERT (``insert_rows``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

ROWS_PER_INSERT = 200  # values bound per multi-row INSERT (SQLite's limit is 999 or more)


def blobs(values: Iterable[Any]) -> list[Any]:
    """``values`` to bind, ``bytes`` as ``bytearray``: the same BLOB. sqlite3 (Python 3.11) binds
    str, int, float and bytearray at once, but offers bytes to its adapters, which fail through
    a formatted AttributeError: ~3,300 instructions a value; a copy costs ~150."""
    return [bytearray(v) if v.__class__ is bytes else v for v in values]


def insert_rows(
    conn: sqlite3.Connection, head: str, tail: str, rows: Sequence[Sequence[Any]], width: int
) -> int:
    """``head VALUES (..), (..) tail`` for ``rows`` of ``width`` values (width 1: the values
    themselves), ``ROWS_PER_INSERT`` values to a statement (the rest one row at a time); how
    many rows it changed. A statement per row cost a step and a reset per row: ~30% of
    writing a user, ~55% of writing an event."""
    changed = 0
    per = ROWS_PER_INSERT // width
    full = len(rows) - len(rows) % per
    if full:
        sql = values_sql(head, tail, width, per)
        for start in range(0, full, per):
            part = rows[start : start + per]
            flat = blobs(part if width == 1 else chain.from_iterable(part))
            changed += conn.execute(sql, flat).rowcount
    if full < len(rows):
        rest = rows[full:]
        bound = [blobs(row) for row in rest] if width > 1 else [(v,) for v in blobs(rest)]
        changed += max(conn.executemany(values_sql(head, tail, width, 1), bound).rowcount, 0)
    return changed


@lru_cache(maxsize=8)
def values_sql(head: str, tail: str, width: int, count: int) -> str:
    row = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([row] * count)} {tail}"
