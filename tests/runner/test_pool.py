"""--workers: rows converted in worker processes give exactly what one process gives — the same
requests in the same order, the same failures at the same lines, the same accounting."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.config import ImportConfig, ReadOptions, RetryPolicy
from importer.convert import Converter
from importer.convert import converter as converter_module
from importer.errors import AbortError
from importer.mapping import mapping_from_text
from importer.models import Item, RowFailure, RowRef, SourceRow
from importer.read import RangeText
from importer.read.source import open_source
from importer.runner import engine as engine_module
from importer.runner import entry as entry_module
from importer.runner import in_process as in_process_module
from importer.runner import pool as pool_module
from importer.runner import worker
from importer.runner.entry import resume_import, run_import
from importer.runner.pool import RangeChunk, default_workers
from importer.sandbox import SandboxSettings, sandbox_in_thread

KEY = "sandbox-key"
MAPPING = """
[identity]
external_id = "id"

[attributes]
points = { column = "points", type = "integer" }
tier = { column = "tier", map = { g = "gold", s = "silver" } }

[[events]]
name = { value = "visit" }
time = "when"

[[purchases]]
product_id = "sku"
currency = { value = "EUR" }
price = { column = "price", type = "float" }
time = "when"
"""


def _source(path: Path, rows: int, offset: int) -> Path:
    lines = ["id,points,tier,when,sku,price"]
    for n in range(offset, offset + rows):
        user = f"u{n % 40}"  # repeated users: attributes merged inside a request
        points = "x" if n % 17 == 0 else str(n)  # fails at convert
        when = "" if n % 23 == 0 else f"2024-03-01T10:{n // 60 % 60:02}:{n % 60:02}Z"
        sku, price = ("", "") if n % 3 else (f"S{n}", "-1" if n % 31 == 0 else "9.5")
        lines.append(f"{user},{points},{'gs'[n % 2]},{when},{sku},{price}")
        if n % 97 == 0:
            lines.append("ragged,row")  # fails at read
        if n % 89 == 0:
            lines.append(f",1,g,{when},,")  # no identifier
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import(
    tmp_path: Path,
    workers: int,
    *,
    dry_run: bool = False,
    state: Path | None = None,
    night: int = 0,
    sources: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One import of the same two sources (or ``sources``); the run directory is
    ``run-<workers>-<night>``."""
    mapping = tmp_path / "map.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    sources = sources or (
        str(_source(tmp_path / "a.csv", 700, 0)),
        str(_source(tmp_path / "b.csv", 300, 700)),
    )
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        config = ImportConfig(
            sources=sources,
            endpoint=sandbox.url,
            api_key=KEY,
            mapping_path=mapping,
            run_dir=tmp_path / f"run-{workers}-{night}",
            rate_per_minute=0,
            concurrency=1,  # one request at a time: the sandbox sees them in order
            batch_mode="legacy",
            retry=RetryPolicy(attempts=2, base_s=0.001, cap_s=0.01),
            dry_run=dry_run,
            workers=workers,
            state_path=state,
        )
        report = run_import(config)
        accepted = {a: sandbox.accepted(a) for a in ("attributes", "events", "purchases")}
    return _outcome(report.run_dir, report.exit_code, accepted, report.error)


def _resume(run_dir: Path, workers: int) -> dict[str, Any]:
    """Resume the run in ``run_dir`` against a new sandbox (the first run's is gone)."""
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        manifest = orjson.loads((run_dir / "run.json").read_bytes())
        manifest["settings"]["endpoint"] = sandbox.url
        (run_dir / "run.json").write_bytes(orjson.dumps(manifest))
        report = resume_import(run_dir, api_key=KEY, workers=workers)
        accepted = {a: sandbox.accepted(a) for a in ("attributes", "events", "purchases")}
    return _outcome(run_dir, report.exit_code, accepted, report.error)


def _outcome(
    run_dir: Path, exit_code: int, accepted: dict[str, Any], error: str | None = None
) -> dict[str, Any]:
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    for key in ("elapsed_s", "rows_per_s", "requests_per_s", "max_in_flight"):
        summary.pop(key)
    return {
        "exit": exit_code,
        "error": error,
        "summary": summary,
        "failures": [_without_ts(line) for line in _lines(run_dir / "failures.jsonl")],
        "requests": [orjson.loads(line)["lines"] for line in _lines(run_dir / "results.jsonl")],
        "accepted": accepted,
    }


def _without_ts(line: bytes) -> dict[str, Any]:
    """A failures line without its time stamp (which differs between two runs)."""
    failure = orjson.loads(line)
    assert failure.pop("ts").endswith("Z")
    return dict(failure)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool for a small file, in chunks of 7 rows: many hand-overs and joins."""
    monkeypatch.setattr(pool_module, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(engine_module, "CHUNK_ROWS", 7)
    monkeypatch.setattr(in_process_module, "CHUNK_ROWS", 7)  # --state in one process


@pytest.mark.usefixtures("small_pool")
def test_two_workers_send_what_one_process_sends_in_the_same_order(tmp_path: Path) -> None:
    one = _import(tmp_path, 1)
    two = _import(tmp_path, 2)
    assert one["summary"]["failed"] > 50 and one["summary"]["skipped"] == {}
    assert one["summary"]["rows_read"] == 1000 + 11 + 12  # the ragged and id-less lines too
    assert two == one


@pytest.mark.usefixtures("small_pool")
def test_the_workers_run_before_the_sources_are_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork gives a worker every page the main process holds then: forked after the sources
    were opened, each worker's resident set counted every source's first block (~1.2 MB of a
    CSV file). So the workers are running when the first source is opened, and what they
    convert reaches them later; the run's outcome is the single process's."""
    workers_at_open: list[int] = []
    opened = entry_module.open_source

    def opening(*args: Any, **kwargs: Any) -> Any:
        running = multiprocessing.active_children()
        workers_at_open.append(sum(p.name.startswith("braze-import-worker") for p in running))
        return opened(*args, **kwargs)

    monkeypatch.setattr(entry_module, "open_source", opening)
    two = _import(tmp_path, 2)
    assert workers_at_open == [2, 2]
    assert two == _import(tmp_path, 1)


@pytest.mark.usefixtures("small_pool")
def test_a_dry_run_with_workers_counts_what_one_process_counts(tmp_path: Path) -> None:
    one = _import(tmp_path, 1, dry_run=True)
    two = _import(tmp_path, 3, dry_run=True)
    assert one["summary"]["requests"] > 10
    assert two["summary"] == one["summary"] and two["failures"] == one["failures"]


@pytest.mark.usefixtures("small_pool")
def test_with_state_workers_leave_out_what_one_process_leaves_out(tmp_path: Path) -> None:
    """The workers hash each item for --state (importer.state.item_digests); the main process
    decides from those digests, on the first night and on a night where nothing changed."""
    nights: dict[int, list[dict[str, Any]]] = {}
    for workers in (1, 2):
        state = tmp_path / f"state-{workers}.db"
        nights[workers] = [_import(tmp_path, workers, state=state, night=n) for n in (1, 2)]
    assert nights[2] == nights[1]
    second = nights[1][1]
    assert second["summary"]["events_already_sent"] == 900 + 300
    assert second["accepted"]["events"] == []


def _tricky(path: Path, rows: int, *, broken: bool) -> Path:
    """A CSV file with what a reader must get right: a BOM, CRLF and CR line ends, quoted cells
    over several lines and with quotes in them, bad bytes, a NUL, ragged and blank lines; with
    ``broken``, a quote opened and never closed half way (the rest is parsed again)."""
    out = [b"\xef\xbb\xbfid,points,tier,when,sku,price\r\n"]
    for n in range(rows):
        when = f"2024-03-01T10:{n // 60 % 60:02}:{n % 60:02}Z".encode()
        sku = b'"S""%d\r\nsecond line"' % n if n % 5 == 0 else b"S%d" % n
        points = b"x" if n % 17 == 0 else b"%d" % n  # fails at convert: its record comes back
        out.append(b"u%d,%s,%s,%s,%s,9.5" % (n % 40, points, b"gs"[n % 2 : n % 2 + 1], when, sku))
        out.append(b"\r" if n % 11 == 0 else b"\n")
        if n % 13 == 0:
            out.append(b"u1,\xff\xfe,g,,,\nu2,n\x00l,g,,,\nragged\n\n")
        if broken and n == rows // 2:
            out.append(b'u3,1,"never closed,,,\n')
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.usefixtures("small_pool")
@pytest.mark.parametrize("broken", [False, True], ids=["clean", "unterminated quote"])
def test_workers_parse_a_tricky_csv_as_one_process_does(tmp_path: Path, broken: bool) -> None:
    """Each worker parses a range of the raw lines (importer.read.csv_ranges); a range whose
    quote never closes is parsed again by the main process, from there on."""
    plain = _tricky(tmp_path / "t.csv", 400, broken=broken)
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    sources = (str(plain), str(packed))
    one = _import(tmp_path, 1, sources=sources)
    two = _import(tmp_path, 2, sources=sources)
    codes = {failure["error"] for failure in one["failures"]}
    assert {"bad_encoding", "nul_byte", "ragged_row", "invalid_integer"} <= codes
    assert ("unterminated_quote" in codes) is broken
    assert two == one


@pytest.mark.usefixtures("small_pool")
def test_with_state_a_file_parsed_again_leaves_out_what_one_process_leaves_out(
    tmp_path: Path,
) -> None:
    """Rows converted here after a dirty range carry no digests; --state makes them itself."""
    sources = (str(_tricky(tmp_path / "t.csv", 300, broken=True)),)
    nights = {
        workers: [
            _import(tmp_path, workers, state=tmp_path / f"s{workers}.db", night=n, sources=sources)
            for n in (1, 2)
        ]
        for workers in (1, 2)
    }
    assert nights[2] == nights[1]
    assert nights[1][1]["summary"]["events_already_sent"] > 200


@pytest.mark.usefixtures("small_pool")
def test_a_resume_with_workers_sends_what_one_process_sends(tmp_path: Path) -> None:
    """The rows an earlier attempt settled are counted, not converted again, range by range."""
    plain = _tricky(tmp_path / "t.csv", 400, broken=False)
    first = _import(tmp_path, 1, sources=(str(plain),))
    run_dir = tmp_path / "run-1-0"
    results = run_dir / "results.jsonl"
    kept = results.read_bytes().splitlines(keepends=True)
    assert len(kept) > 4
    results.write_bytes(b"".join(kept[: len(kept) // 3]))  # as if killed a third of the way
    outcomes = {}
    for workers in (1, 2):
        copy = tmp_path / f"resumed-{workers}"
        shutil.copytree(run_dir, copy)
        outcomes[workers] = _resume(copy, workers)
    assert outcomes[2] == outcomes[1]
    summary = outcomes[1]["summary"]
    assert summary["rows_read"] == first["summary"]["rows_read"]
    assert summary["delivered"] + summary["failed"] == summary["rows_read"]
    assert len(outcomes[1]["accepted"]["events"]) < len(first["accepted"]["events"])


def test_the_default_is_the_cores_this_process_may_use() -> None:
    import os

    assert default_workers() == len(os.sched_getaffinity(0))


def test_a_worker_generates_a_sources_code_once_not_once_per_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each chunk's header arrives unpickled, a new tuple equal to the last; the converter keys
    # its generated code on the header, so without care it compiled the code again per chunk.
    generated: list[object] = []
    real_row_code = converter_module.row_code

    def counting_row_code(*args: Any) -> Any:
        generated.append(args)
        return real_row_code(*args)

    monkeypatch.setattr(converter_module, "row_code", counting_row_code)
    converter = Converter(mapping_from_text("pool.toml", MAPPING))
    monkeypatch.setattr(worker, "_converters", [converter])
    generated.clear()  # the converter's own code for records given as dicts
    header_sent = ("id", "points", "tier", "when", "sku", "price")
    for chunk in range(3):
        header = pickle.loads(pickle.dumps(header_sent))  # as a worker gets it: a new tuple
        rows = [(2 + chunk, ["u1", str(chunk), "g", "2024-03-01T10:00:00Z", "", ""])]
        (answer,) = worker.convert_chunk(0, "s.csv", header, rows)
        assert isinstance(answer, tuple), answer  # (user, wire, digests, key, row key)
        user, wire, _, _, _ = answer
        attributes = Item(RowRef("s.csv", 2), {}, user, wire=wire).decoded().attributes
        assert attributes[0]["points"] == chunk
    assert len(generated) == 1


class _Answered:
    """A range's ticket whose answer is known already (converted in this process)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def result(self) -> Any:
        return self.answer


@pytest.mark.parametrize("keyed", [False, True])
def test_a_ranges_rows_come_back_as_one_process_converts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyed: bool
) -> None:
    # An item with nothing but its user and objects to tell travels as its user and wire alone;
    # one with an [operations] key keeps it.
    text = MAPPING
    if keyed:
        inc = 'visits = { column = "points", type = "integer", op = "inc" }\n'
        text = (
            text.replace("[attributes]\n", "[attributes]\n" + inc) + '[operations]\nkey = "tier"\n'
        )

    converter = Converter(mapping_from_text("pool.toml", text), wire=True)
    monkeypatch.setattr(worker, "_converters", [converter])
    path = _source(tmp_path / "a.csv", 120, 0)
    with open_source(str(path), ReadOptions()) as source:
        serial = [
            row if isinstance(row, RowFailure) else converter.convert(row) for row in source.rows()
        ]
    with open_source(str(path), ReadOptions()) as source:
        ranges = source.ranges(500)
        assert ranges is not None
        (block,) = list(ranges)
        data = b"".join(block.lines)
        answer = worker.convert_range(
            0, ranges.layout, block.first_line, data, block.issues, frozenset()
        )
        assert any(user is not None for user in answer[2]) is not keyed
        joined = RangeChunk(RangeText(ranges.layout, block), _Answered(answer)).joined(
            lambda *_: None
        )  # type: ignore[arg-type]
    assert joined is not None and len(joined) == len(serial)
    for pooled, alone in zip(joined, serial, strict=True):
        if isinstance(alone, Item):
            assert isinstance(pooled, Item)
            assert (pooled.ref, pooled.user, pooled.operations) == (
                alone.ref,
                alone.user,
                alone.operations,
            )
            assert pooled.decoded().objects() == alone.decoded().objects()
            assert pooled.record.cells == SourceRow(alone.ref, alone.record).record.cells
        else:
            assert isinstance(pooled, RowFailure) and isinstance(alone, RowFailure)
            assert pooled.ref == alone.ref and pooled.message == alone.message
    assert keyed is any(isinstance(out, Item) and out.operations for out in joined)


def _dying_range(*args: Any) -> Any:
    """A worker killed on its second range (as the OOM killer would): no answer, no word."""
    if getattr(_dying_range, "calls", 0) >= 1:
        os._exit(9)
    _dying_range.calls = 1  # type: ignore[attr-defined]
    return worker.convert_range(*args)


@pytest.mark.usefixtures("small_pool")
def test_a_worker_that_dies_aborts_the_run_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _import(tmp_path, 1)
    monkeypatch.setattr(pool_module, "convert_range", _dying_range)
    died = _import(tmp_path, 2)
    assert died["exit"] == AbortError.exit_code
    assert "a conversion worker process died (exit code 9)" in died["error"]
    monkeypatch.undo()
    resumed = _resume(tmp_path / "run-2-0", 2)
    assert resumed["exit"] == one["exit"]
    for key in ("rows_read", "delivered", "failed"):
        assert resumed["summary"][key] == one["summary"][key]
    assert sorted(map(str, resumed["failures"])) == sorted(map(str, one["failures"]))
