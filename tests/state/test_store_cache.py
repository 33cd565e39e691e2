"""The state file's page cache follows the file's size (importer.state.page_cache.cache_kib)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from importer.state import page_cache
from importer.state.page_cache import cache_kib
from importer.state.store import connect, transaction, write_users


def _cache_kib(conn: sqlite3.Connection) -> int:
    return -int(conn.execute("PRAGMA cache_size").fetchone()[0])


def test_the_cache_is_a_twelfth_of_the_file_between_8_and_32_mib() -> None:
    mib = 1024 * 1024
    assert cache_kib(0) == 8 * 1024
    assert cache_kib(96 * mib) == 8 * 1024
    assert cache_kib(192 * mib) == 16 * 1024
    assert cache_kib(10 * 1024 * mib) == 32 * 1024


def test_a_fresh_state_file_gets_the_smallest_cache(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.state")
    try:
        assert _cache_kib(conn) == 8 * 1024  # was 32 MiB, filled with a first night's pages
    finally:
        conn.close()


def test_the_cache_grows_with_the_file_as_transactions_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_cache, "CACHE_MIN_KIB", 16)  # a small file shows the rule
    conn = connect(tmp_path / "s.state")
    try:
        before = _cache_kib(conn)
        with transaction(conn):
            write_users(
                conn, [(f"user-{n:06}", n, None, b"x" * 200, None, None) for n in range(20_000)]
            )
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = pages * conn.execute("PRAGMA page_size").fetchone()[0]
        assert _cache_kib(conn) == size // 1024 // 12 > before
    finally:
        conn.close()
