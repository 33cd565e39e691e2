"""The SQLite file behind the delivery state: schema, writes, counters, runs (the batched
look-ups of users and delivered keys are in ``lookups``).

Layout (about 200 bytes per user with a dozen attributes, 20 per event remembered):

- ``users``: one row per user, keyed by the user's key text (``WITHOUT ROWID``: the row lives in
  the key's B-tree, one descent per look-up), holding a permanent user number, the digest of the
  last whole attributes object confirmed, and a blob of 12-byte (attribute name id, value digest)
  entries; and the key of the one row known to make that whole object, with its counts
  (``row``, ``rowc``: see ``row_keys``), indexed by key so a row is found before it is converted
  (an index a first night leaves out and sorts once as it closes: ``drop_row_index``).
- ``names``: attribute name <-> small id, loaded whole at open.
- ``delivered``: one 13-byte key per delivered event, purchase or attribute operation (``inc``,
  ``add``, ``remove``: see ``digest``): the user number (5 bytes, big-endian) then the
  fingerprint, so one user's events are neighbours.
- ``meta``: schema version, the next user number, and counters kept in step with every write, so
  ``inspect`` does not scan ten million rows.
- ``runs``: one row per run (label, start, end, pid, host, summary JSON).

WAL mode with ``synchronous=NORMAL``: a committed confirmation survives the process being killed
(SIGKILL, OOM); only a power cut can lose the last few commits, which would resend those events
once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from importer.filelock import Holder, open_private, utc_now
from importer.state.binding import blobs, insert_rows
from importer.state.page_cache import fit_cache

SCHEMA_VERSION = 1
COUNTERS = ("users", "attribute_values", "attributes_unset", "events", "purchases", "operations")
_META_KEYS = ("next_user", *COUNTERS)
RUNS_KEPT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS users (
    key TEXT PRIMARY KEY, num INTEGER NOT NULL, whole BLOB, attrs BLOB NOT NULL,
    row BLOB, rowc INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (k BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, label TEXT NOT NULL, started TEXT NOT NULL, ended TEXT,
    pid INTEGER, host TEXT, summary TEXT
);
"""

# A release from before row keys writes ``whole`` and leaves ``row`` as it was; the file itself
# then clears the key (older code runs the file's triggers too), or a rolled-forward night would
# trust a key that no longer names the stored object and leave the change out.
_ROW_FOLLOWS_WHOLE = """
CREATE TRIGGER IF NOT EXISTS users_row_follows_whole AFTER UPDATE OF whole ON users
WHEN NEW.row IS NOT NULL AND NEW.row IS OLD.row AND NEW.whole IS NOT OLD.whole
BEGIN UPDATE users SET row = NULL, rowc = NULL WHERE key = NEW.key; END
"""

UserRow = tuple[int, bytes | None, bytes]  # (user number, whole-object digest, attribute digests)


def connect(path: Path) -> sqlite3.Connection:
    """Open or create the state database (mode 0600, WAL) and check its schema.

    Raises sqlite3.Error or OSError; ``DeliveryState.open`` translates them.
    """
    os.close(open_private(path, os.O_RDWR))  # SQLite gives -wal and -shm the main file's mode
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=256)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous=NORMAL")
        # No mmap: every page of the file a night touched would stay in the process's resident
        # set (a 1,000,000-user file took a nightly run from ~100 to ~410 MB), for ~6% more CPU
        # on a night where nothing changed. The page cache follows the file (fit_cache).
        conn.execute("PRAGMA mmap_size=0")
        fit_cache(conn)
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint=16384")  # checkpoint every 64 MiB, not 4 MiB
        with transaction(conn):
            _create_schema(conn)
        build_row_index(conn)  # missing if a run that dropped it was stopped
    except BaseException:
        conn.close()
        raise
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT our transaction
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        conn.executemany("INSERT INTO meta VALUES (?, 0)", [(name,) for name in _META_KEYS])
    elif row[0] != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {row[0]!r}; this braze-import reads version {SCHEMA_VERSION}"
        )
    else:  # a file from before operations were remembered: the same tables, one counter more
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('operations', 0)")
        columns = {column[1] for column in conn.execute("PRAGMA table_info(users)")}
        if "row" not in columns:  # a file from before row keys: it has none yet (row_keys)
            conn.execute("ALTER TABLE users ADD COLUMN row BLOB")
            conn.execute("ALTER TABLE users ADD COLUMN rowc INTEGER")
    conn.execute(_ROW_FOLLOWS_WHOLE)
    # Counts the transactions that recorded deliveries: a conversion worker reads it with the
    # users it looked up, so the main process knows which later writes it could not see.
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('commits', 0)")


_SORT_CACHE_KIB = 2048  # the page cache while the index of row keys is sorted
# Only users whose row is remembered: most of a mapping's rows, never the others'.
_ROW_INDEX = "CREATE INDEX IF NOT EXISTS users_row ON users (row, rowc) WHERE row IS NOT NULL"
_HAS_ROW_INDEX = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'users_row'"


def drop_row_index(conn: sqlite3.Connection) -> None:
    """Leave the index of row keys out while a run keys a file that held none (``build_row_index``
    puts it back as the file closes).

    A run that keys a file which held no keys when it began looks none up (``StateView.keyed``),
    and its keys are digests, so each commit's keys land on random leaves of the index (a first
    night of 1,000,000 CRM rows with ``--workers 1``: 71 µs of CPU a row kept up commit by
    commit, 62 built at the end; docs/performance.md)."""
    with transaction(conn):
        conn.execute("DROP INDEX IF EXISTS users_row")


def build_row_index(conn: sqlite3.Connection) -> None:
    """Build the index of row keys in one sort if it is missing: as a run that dropped it
    closes (``drop_row_index``), or as the file opens after such a run was stopped.

    The sort spills to temporary files (mode 0600, unlinked as SQLite opens them), not memory:
    at 1,000,000 users, 0.9 s and no growth of a bare process's peak resident set, against +32
    MB with the run's page cache and +76 MB sorting in memory. With no room (or no place) for
    those files it sorts in memory, as the index was kept before: a file without it would stop
    every later run as it opens."""
    if conn.execute(_HAS_ROW_INDEX).fetchone() is not None:
        return
    # The sort holds as much in memory as the page cache may (then spills), and the pages a
    # night read are of no use to it: a small cache, emptied; the commit fits it again.
    conn.execute(f"PRAGMA cache_size=-{_SORT_CACHE_KIB}")
    conn.execute("PRAGMA shrink_memory")
    conn.execute("PRAGMA temp_store=FILE")  # outside a transaction, as SQLite asks
    try:
        with transaction(conn):
            conn.execute(_ROW_INDEX)
    except sqlite3.OperationalError:  # the temporary directory is full or not writable
        conn.execute("PRAGMA temp_store=MEMORY")
        with transaction(conn):
            conn.execute(_ROW_INDEX)
    finally:
        conn.execute("PRAGMA temp_store=MEMORY")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    fit_cache(conn)  # the file may have grown: a first night's does, from nothing


def load_names(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: name_id for name_id, name in conn.execute("SELECT id, name FROM names")}


def add_name(conn: sqlite3.Connection, name: str) -> int:
    cursor = conn.execute("INSERT INTO names (name) VALUES (?)", (name,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def next_user_number(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'next_user'").fetchone()[0])


def has_row_keys(conn: sqlite3.Connection) -> bool:
    """Does any user's row hold a row key (``row_keys``)? One step into the partial index."""
    return conn.execute("SELECT 1 FROM users WHERE row IS NOT NULL LIMIT 1").fetchone() is not None


def commit_number(conn: sqlite3.Connection) -> int:
    """How many transactions have recorded deliveries (``record_deliveries``) in this file."""
    return int(conn.execute("SELECT value FROM meta WHERE key = 'commits'").fetchone()[0])


_USERS_HEAD = "INSERT INTO users (key, num, whole, attrs, row, rowc)"
_USERS_TAIL = (
    "ON CONFLICT (key) DO UPDATE SET whole = excluded.whole, attrs = excluded.attrs, "
    "row = excluded.row, rowc = excluded.rowc"
)
# A user's stored whole digest, its row key and counts (row_keys): a row key is written with
# every whole digest (None: no row known), so it never outlives the digest it was stored with.
Whole = tuple[bytes | None, bytes | None, int | None]
UserWrite = tuple[str, int, bytes | None, bytes, bytes | None, int | None]


def write_users(conn: sqlite3.Connection, rows: list[UserWrite]) -> None:
    """Insert or update these users' rows (each user once): key, number, whole digest,
    attribute digests, row key, row counts."""
    insert_rows(conn, _USERS_HEAD, _USERS_TAIL, rows, 6)


def set_wholes(conn: sqlite3.Connection, wholes: dict[str, Whole]) -> None:
    """Store whole digests and row keys of users found unchanged; a whole digest of None keeps
    the stored one (a row found unchanged by it: only its key is new)."""
    conn.executemany(
        "UPDATE users SET whole = coalesce(?, whole), row = ?, rowc = ? WHERE key = ?",
        [blobs((*w, key)) for key, w in wholes.items()],
    )


def add_delivered(conn: sqlite3.Connection, keys: Iterable[bytes]) -> int:
    """Remember delivered events or purchases; returns how many were new."""
    return insert_rows(conn, "INSERT OR IGNORE INTO delivered (k)", "", [*keys], 1)


def bump_counters(conn: sqlite3.Connection, deltas: dict[str, int]) -> None:
    """Add to the counters (and ``next_user``) in ``meta``."""
    changes = [(delta, name) for name, delta in deltas.items() if delta]
    if changes:
        conn.executemany("UPDATE meta SET value = value + ? WHERE key = ?", changes)


def start_run(conn: sqlite3.Connection, holder: Holder) -> int:
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO runs (label, started, pid, host) VALUES (?, ?, ?, ?)",
            (holder.label, holder.started, holder.pid, holder.host),
        )
        conn.execute("DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?", (RUNS_KEPT,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def end_run(conn: sqlite3.Connection, run_id: int, label: str, summary: dict[str, Any]) -> None:
    text = orjson.dumps(summary, default=str).decode()
    with transaction(conn):
        conn.execute(
            "UPDATE runs SET label = ?, ended = ?, summary = ? WHERE id = ?",
            (label, utc_now(), text, run_id),
        )


def describe(conn: sqlite3.Connection, path: Path, runs: int = 10) -> dict[str, Any]:
    """What ``braze-import state inspect`` prints."""
    counters = dict(conn.execute("SELECT key, value FROM meta WHERE key != 'next_user'"))
    page_size, pages = (
        conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "page_count")
    )
    wal = Path(f"{path}-wal")
    last_runs = [
        {
            "label": label,
            "started": started,
            "ended": ended,
            "pid": pid,
            "host": host,
            "summary": orjson.loads(summary) if summary else None,
        }
        for label, started, ended, pid, host, summary in conn.execute(
            "SELECT label, started, ended, pid, host, summary FROM runs ORDER BY id DESC LIMIT ?",
            (runs,),
        )
    ]
    return {
        "path": str(path),
        "schema": counters.get("schema"),
        **{name: counters.get(name, 0) for name in COUNTERS},
        "attribute_names": conn.execute("SELECT count(*) FROM names").fetchone()[0],
        "file_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "database_bytes": page_size * pages,
        "runs": last_runs,
    }
