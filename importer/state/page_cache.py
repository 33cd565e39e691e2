"""The state file's page cache: sized to the file, grown as the file grows."""

from __future__ import annotations

import sqlite3

CACHE_MIN_KIB, CACHE_MAX_KIB = 8 * 1024, 32 * 1024  # the page cache's bounds (cache_kib)
CACHE_SHARE = 12  # the page cache is 1/12 of the file between those bounds


def cache_kib(file_bytes: int) -> int:
    """The page cache for a state file of ``file_bytes``: what a look-up descends through on
    every row, the B-trees' interior pages, and the leaves a flush writes.

    Interior pages are ~7% of a state file (SQLite's dbstat on a 177 MB one: 2,912 of the users
    table's 39,873 pages; a WITHOUT ROWID table's interior cells carry whole rows), so 1/12 of
    the file; at least 8 MiB, ~16 times what a flush of 2,000 rows in file order writes; at
    most 32 MiB, the fixed size before, which on a fresh file held every page written: ~35 MB
    of the main process's ~120 on a first night whose users came in key order (appends)."""
    return min(CACHE_MAX_KIB, max(CACHE_MIN_KIB, file_bytes // 1024 // CACHE_SHARE))


def fit_cache(conn: sqlite3.Connection) -> None:
    """Size the connection's page cache to its file now (``cache_kib``)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    page_bytes = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size=-{cache_kib(pages * page_bytes)}")
