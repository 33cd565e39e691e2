"""Rows the state knows by their key are not converted, and nothing else changes: whole nights
run twice against the sandbox — once as they are, once with every row key wiped from the state
file before each night (the state then decides every row by its objects, as before keys) —
must send the same objects byte for byte, fail and skip the same rows, and count the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from importer.config import ImportConfig, RetryPolicy
from importer.models import CsvRecord, Item, RowRef, SourceRow
from importer.runner import pool as pool_module
from importer.runner.entry import run_import
from importer.sandbox import SandboxSettings, sandbox_in_thread
from importer.state.row_keys import converted, keys_of, salt

COLUMNS = ("id", "city", "points", "when", "sku", "bonus")
MAPPINGS = (
    """
[identity]
external_id = "id"

[attributes]
city = "city"
points = { column = "points", type = "integer" }

[[events]]
name = { value = "order" }
time = "when"
properties = { sku = "sku" }

[[purchases]]
product_id = "sku"
time = "when"
price = { value = 2.5 }
currency = { value = "EUR" }
""",
    """
[identity]
external_id = "id"

[attributes]
home_city = "city"
points = { column = "points", type = "integer" }
bonus = { column = "bonus", type = "integer", op = "inc" }

[[events]]
name = { value = "order" }
time = "when"
""",
)
TIMES = ("2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z", "")

rows = st.tuples(
    st.sampled_from(["u0", "u1", "u2"]),  # a few users: rows move between them
    st.sampled_from(["Berlin", "Paris"]),
    st.sampled_from(["1", "2", "x"]),  # "x": the row fails conversion
    st.sampled_from(TIMES),
    st.sampled_from(["", "s1"]),
    st.sampled_from(["", "", "5"]),
)
IDENTITY = tuple(range(len(COLUMNS)))
A = ("u0", "Berlin", "1", TIMES[0], "s1", "")
B = ("u0", "Paris", "1", TIMES[0], "s1", "")
C = ("u0", "Berlin", "2", TIMES[0], "s1", "")
OP = ("u0", "Paris", "2", TIMES[1], "", "5")


@st.composite
def nights(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Nights made of a few rows drawn once, so the same row comes back night after night,
    now and then under another mapping or header order, its user's objects refused."""
    pool = draw(st.lists(rows, min_size=1, max_size=6))
    drawn = []
    for _ in range(draw(st.integers(2, 4))):
        picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=8))
        drawn.append(
            (
                [pool[n] for n in picks],  # duplicates among them too
                draw(st.sampled_from([0, 0, 0, 1])),  # the mapping, mostly the first
                draw(st.sampled_from([IDENTITY, IDENTITY, IDENTITY, (5, 4, 3, 2, 1, 0)])),
                draw(st.frozensets(st.sampled_from(["u0", "u1"]), max_size=1)),  # refused
            )
        )
    return drawn


def _night(tmp: Path, n: int, night: tuple[Any, ...], wipe: bool, workers: str) -> tuple[Any, ...]:
    data, mapping, order, blocked = night
    source = tmp / f"export-{n}.csv"
    header = [COLUMNS[i] for i in order]
    lines = [",".join(header)] + [",".join(row[i] for i in order) for row in data]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "map.toml").write_text(MAPPINGS[mapping], encoding="utf-8")
    state = tmp / "state.db"
    if wipe and state.exists():
        with sqlite3.connect(state) as conn:
            conn.execute("UPDATE users SET row = NULL, rowc = NULL")
    blocked_ids = frozenset(blocked)
    with sandbox_in_thread(SandboxSettings(blocked_external_ids=blocked_ids)) as sandbox:
        config = ImportConfig(
            sources=(str(source),),
            endpoint=sandbox.url,
            api_key="sandbox-key",
            mapping_path=tmp / "map.toml",
            run_dir=tmp / f"run-{n}",
            rate_per_minute=0,
            concurrency=1,  # the sandbox sees the requests in one order
            retry=RetryPolicy(attempts=2, base_s=0.001, cap_s=0.01),
            state_path=state,
            workers=int(workers),
            batch_mode="legacy",
        )
        report = run_import(config)
        sent = {
            array: [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in sandbox.accepted(array)]
            for array in ("attributes", "events", "purchases")
        }
    summary = orjson.loads((tmp / f"run-{n}" / "summary.json").read_bytes())
    failures = (tmp / f"run-{n}" / "failures.jsonl").read_text(encoding="utf-8").splitlines()
    failed = sorted((f["line"], f["error"]) for f in map(orjson.loads, failures))
    counted = {k: summary[k] for k in ("delivered", "failed", "skipped", "objects_sent")}
    changes = (summary["attributes_unchanged"], summary["events_already_sent"])
    return report.exit_code, counted, changes, sent, failed


def _nights(tmp: Path, drawn: list[Any], wipe: bool, workers: str) -> list[tuple[Any, ...]]:
    tmp.mkdir()
    return [_night(tmp, n, night, wipe, workers) for n, night in enumerate(drawn)]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(nights(), st.sampled_from(["1", "2"]))
# A user's row A, then rows written without a key (B then C, whose event B already carries:
# C's whole digest is not exact), then A again: A's key is stale and must not be trusted.
@example(
    [
        ([A], 0, IDENTITY, frozenset()),
        ([B, C], 0, IDENTITY, frozenset()),
        *[([A], 0, IDENTITY, frozenset())],
    ],
    "1",
)
# The same, B carrying an operation under another mapping (never stored whole).
@example(
    [
        ([A], 0, IDENTITY, frozenset()),
        ([OP], 1, IDENTITY, frozenset()),
        ([A], 0, IDENTITY, frozenset()),
    ],
    "1",
)
def test_nights_with_row_keys_go_as_nights_without_them(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    drawn: list[Any],
    workers: str,
) -> None:
    monkeypatch.setattr(pool_module, "POOL_MIN_BYTES", 0)  # "2": worker processes even here
    base = tmp_path_factory.mktemp("nights")
    kept = _nights(base / "kept", drawn, wipe=False, workers=workers)
    wiped = _nights(base / "wiped", drawn, wipe=True, workers=workers)
    assert kept == wiped


def test_a_night_that_changed_nothing_converts_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old state file (no keys) compares as before and stores keys; the night after, no row
    is converted (the converter is not called) and the same rows are left out."""
    drawn = [([("u0", "Berlin", "1", TIMES[0], "s1", ""), ("u1", "Paris", "2", "", "", "")], 0)]
    night = (drawn[0][0], 0, tuple(range(len(COLUMNS))), frozenset())
    first = _night(tmp_path, 0, night, wipe=False, workers="1")
    with sqlite3.connect(tmp_path / "state.db") as conn:  # the file as a release before made it
        conn.execute("DROP TRIGGER users_row_follows_whole")
        conn.execute("DROP INDEX users_row")
        conn.execute("ALTER TABLE users DROP COLUMN rowc")
        conn.execute("ALTER TABLE users DROP COLUMN row")
    upgraded = _night(tmp_path, 1, night, wipe=False, workers="1")
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("SELECT count(row) FROM users").fetchone() == (2,)
    calls = []
    from importer.convert import Converter

    convert = Converter.convert
    monkeypatch.setattr(
        Converter, "convert", lambda self, row: calls.append(row) or convert(self, row)
    )
    fast = _night(tmp_path, 2, night, wipe=False, workers="1")
    assert calls == []
    assert first[1]["delivered"] == 2
    assert upgraded[1:3] == fast[1:3] and upgraded[1]["skipped"] == {"unchanged": 2}


def test_a_release_before_row_keys_writing_a_whole_digest_clears_the_key(tmp_path: Path) -> None:
    """Rolled back for a night, an older release stores a new whole digest and leaves the row
    key (it knows no such column); rolled forward, the key must name nothing, or the row it
    named would be left out as unchanged while Braze holds the older release's value."""
    order = tuple(range(len(COLUMNS)))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _night(tmp_path / "a", 0, ([A], 0, order, frozenset()), wipe=False, workers="1")
    _night(tmp_path / "b", 0, ([B], 0, order, frozenset()), wipe=False, workers="1")
    with sqlite3.connect(tmp_path / "b" / "state.db") as conn:
        whole, attrs = conn.execute("SELECT whole, attrs FROM users").fetchone()
    with sqlite3.connect(tmp_path / "a" / "state.db") as conn:  # as the older release writes B
        conn.execute(
            "INSERT INTO users (key, num, whole, attrs) SELECT key, num, ?, ? FROM users "
            "WHERE true ON CONFLICT (key) DO UPDATE SET whole = excluded.whole, "
            "attrs = excluded.attrs",
            (whole, attrs),
        )
        assert conn.execute("SELECT row, rowc FROM users").fetchall() == [(None, None)]
    again = _night(tmp_path / "a", 1, ([A], 0, order, frozenset()), wipe=False, workers="1")
    assert [orjson.loads(o)["city"] for o in again[3]["attributes"]] == ["Berlin"]


def test_a_renamed_export_without_a_mapping_is_still_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --mapping the mapping is made of the header alone: tonight's file, named by its
    date, is known by last night's keys (the source's name is not in the salt)."""
    calls: list[Any] = []
    from importer.convert import Converter

    convert = Converter.convert

    def night(name: str) -> dict[str, Any]:
        source = tmp_path / name
        source.write_text("external_id,city\nu0,Berlin\nu1,Paris\n", encoding="utf-8")
        with sandbox_in_thread(SandboxSettings()) as sandbox:
            config = ImportConfig(
                sources=(str(source),),
                endpoint=sandbox.url,
                api_key="sandbox-key",
                run_dir=tmp_path / f"run-{name}",
                rate_per_minute=0,
                state_path=tmp_path / "state.db",
                workers=1,
            )
            run_import(config)
        return orjson.loads((tmp_path / f"run-{name}" / "summary.json").read_bytes())

    assert night("users-2026-12-01.csv")["delivered"] == 2
    monkeypatch.setattr(
        Converter, "convert", lambda self, row: calls.append(row) or convert(self, row)
    )
    assert night("users-2026-12-02.csv")["skipped"] == {"unchanged": 2}
    assert calls == []


def test_a_chunk_under_two_headers_is_not_keyed_by_one() -> None:
    """The same cells under another header are another row: a chunk whose rows come under two
    headers is converted without keys (its first row's header would salt them all)."""
    from importer.models import CsvRecord, RowRef, SourceRow
    from importer.runner.in_process import _mixed

    first, second = ("id", "city"), ("city", "id")
    rows = [SourceRow(RowRef("f.csv", n), CsvRecord(first, ["u0", "Berlin"])) for n in (2, 3)]
    assert not _mixed(rows, first)
    rows.append(SourceRow(RowRef("f.csv", 4), CsvRecord(second, ["Berlin", "u0"])))
    assert _mixed(rows, first)


def test_the_salt_follows_what_the_converting_code_stands_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another orjson, Python or time zone database may convert the same cells otherwise: a key
    made under one names nothing under another."""
    import orjson as orjson_module

    from importer.state import row_keys

    before = row_keys.salt("mapping", ("id",)).digest()
    monkeypatch.setattr(orjson_module, "__version__", "0.0.0-other")
    row_keys._beneath.cache_clear()
    try:
        assert row_keys.salt("mapping", ("id",)).digest() != before
    finally:
        monkeypatch.undo()
        row_keys._beneath.cache_clear()
    assert row_keys.salt("mapping", ("id",)).digest() == before


def test_a_file_without_keys_at_the_start_is_not_asked_for_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first night (or the first after upgrading) looks no key up: the file holds none
    but this run's own, which only a repeated row could meet. The next night does."""
    from importer.state import row_keys

    asked: list[int] = []
    fetch = row_keys.fetch_rows
    monkeypatch.setattr(
        row_keys, "fetch_rows", lambda conn, keys: asked.append(len(keys)) or fetch(conn, keys)
    )
    night = ([A, ("u1", "Paris", "2", TIMES[1], "", "")], 0, IDENTITY, frozenset())
    first = _night(tmp_path, 0, night, wipe=False, workers="1")
    assert first[1]["delivered"] == 2 and asked == []
    second = _night(tmp_path, 1, night, wipe=False, workers="1")
    assert second[1]["skipped"] == {"unchanged": 2} and asked == [2]


def test_a_converted_row_is_the_item_it_converted_to_with_its_key() -> None:
    """``converted`` sets the key as ``Item._replace(row_key=...)`` would, without its frames."""
    made = Item(RowRef("s.csv", 2), {}, "u", ({"external_id": "u"},), (), (), None, None, "op")
    row = SourceRow(RowRef("s.csv", 2), CsvRecord(("id",), ["u"]))
    hasher = salt("v", "mapping")
    [out] = converted([row], hasher, lambda keys: [None] * len(keys), lambda _: made)
    [key] = keys_of(hasher, [row])
    assert key is not None and out == made._replace(row_key=key)
