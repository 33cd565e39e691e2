"""Hostile input, end to end: every file in fixtures/hostile through the real CLI.

Each case runs ``python -m importer run`` as a user would, against its own sandbox, and the
table says what must come out: the exit code, the rows read, the failures (line, stage, code) in
failures.jsonl, which users reached the sandbox and with what values, or (exit 2) the one line on
stderr, with no request sent. Every case also checks the accounting identity of summary.json,
that the sandbox refused nothing (bad values are refused locally, before they cost a request)
and that no traceback reaches the user. The cases run concurrently (one subprocess and one
sandbox each) to keep the file fast; each test then only reads its outcome.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.models import ARRAYS
from importer.sandbox import SandboxSettings, sandbox_in_thread

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "fixtures/hostile"  # relative to ROOT, the subprocess's working directory
KEY = "sandbox-key"
WORKERS = 4

Failure = tuple[int, str, str]  # line, stage, code


def _ids(*numbers: int, prefix: str = "u") -> frozenset[str]:
    return frozenset(f"{prefix}{n}" for n in numbers)


def _truncated_gzip_lines() -> int:
    """How many whole lines any gzip reader can get out of truncated.csv.gz (an oracle that
    does not depend on the importer): rows are those lines minus the header."""
    data = (ROOT / HOSTILE / "truncated.csv.gz").read_bytes()
    text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    return text.count(b"\n")


def _big_cell(size: int) -> Callable[[Path], str]:
    """A CSV whose row 3 has an unmapped cell of ``size`` bytes (made here, not committed)."""

    def make(directory: Path) -> str:
        path = directory / f"big-cell-{size}.csv"
        head = b"external_id,first_name,notes,city\nu1,Ana,short,Oslo\n"
        path.write_bytes(head + b"u2,Bo," + b"x" * size + b",Rome\nu3,Cy,,Paris\n")
        return str(path)

    return make


@dataclass(frozen=True)
class Case:
    id: str
    source: str | Callable[[Path], str]  # a file in fixtures/hostile, or a maker
    args: tuple[str, ...] = ()
    exit: int = 0
    rows: int | None = None  # rows_read; None: not checked (exit 2 runs read nothing)
    failures: tuple[Failure, ...] = ()
    accepted: frozenset[str] | None = None  # users the sandbox accepted; None: dry run
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> expected subset
    messages: dict[int, str] = field(default_factory=dict)  # failure line -> text in message
    stderr: str | None = None  # exit 2: the one stderr line must contain this


TRUNCATED_LINES = _truncated_gzip_lines()
MAPPING_MISTAKES = [
    Case(
        "mapping-typo",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-typo.toml"),
        exit=2,
        stderr=(
            f"error: {HOSTILE}/mapping-typo.toml:6:15: attributes.home_city.colum: "
            "unknown key 'colum' — did you mean 'column'?"
        ),
    ),
    Case(
        "mapping-wrong-type",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-wrong-type.toml"),
        exit=2,
        stderr=(
            f"{HOSTILE}/mapping-wrong-type.toml:3:1: identity.update_existing_only: "
            "expected a boolean, got a string"
        ),
    ),
    Case(
        "mapping-wrong-value-type",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-wrong-value-type.toml"),
        exit=2,
        stderr=(
            f"{HOSTILE}/mapping-wrong-value-type.toml:6:35: attributes.points.type: "
            "expected a type name, got an integer"
        ),
    ),
    Case(
        "mapping-no-identity",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-no-identity.toml"),
        exit=2,
        stderr=f"{HOSTILE}/mapping-no-identity.toml:1:1: identity: missing [identity]",
    ),
    Case(
        "mapping-two-identities",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-two-identities.toml"),
        exit=2,
        stderr=(
            f"{HOSTILE}/mapping-two-identities.toml:3:1: identity.email: "
            "two identifiers, 'external_id' and 'email': keep one"
        ),
    ),
    Case(
        "mapping-missing-column",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-missing-column.toml"),
        exit=2,
        stderr=(
            f"{HOSTILE}/mapping-missing-column.toml:6:1: attributes.home_city: column 'town' is "
            f"not in the header of {HOSTILE}/lf.csv; the header has: external_id, first_name, city"
        ),
    ),
    Case(
        "mapping-dollar-property",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-dollar-property.toml"),
        exit=2,
        stderr=(
            f'{HOSTILE}/mapping-dollar-property.toml:8:1: events[0].properties."$city": '
            "'$city' cannot be a property name"
        ),
    ),
    Case(
        "mapping-deep-literal",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-deep-literal.toml"),
        exit=2,
        stderr=(
            f"{HOSTILE}/mapping-deep-literal.toml:5:10: attributes.deep.value: "
            "the literal is nested deeper than 64 levels"
        ),
    ),
    Case(
        "mapping-bad-toml",
        "lf.csv",
        ("--mapping", f"{HOSTILE}/mapping-bad-toml.toml"),
        exit=2,
        stderr=f"{HOSTILE}/mapping-bad-toml.toml:5:18: invalid TOML",
    ),
]
BAD_ENCODING = (
    (2, "read", "bad_encoding"),
    (3, "read", "bad_encoding"),
    (4, "read", "bad_encoding"),
    (5, "read", "bad_encoding"),
)
CASES = [
    # --- encodings ----------------------------------------------------------------------------
    Case("cp1252-read-as-utf8", "cp1252.csv", exit=1, rows=4, failures=BAD_ENCODING,
         accepted=frozenset(), messages={4: "line 4: bytes 81 at byte 7 are not valid utf-8"}),
    Case("cp1252-flag", "cp1252.csv", ("--encoding", "cp1252"), exit=1, rows=4,
         failures=((4, "read", "bad_encoding"),), accepted=_ids(1, 2, 4),
         attributes={"u2": {"first_name": "Zoë", "city": "Kraków – “Altstadt”"},
                     "u4": {"city": "Köln €"}},
         messages={4: "bytes 81 at byte 7 are not valid cp1252"}),
    Case("cp1252-mapping", "cp1252.csv", ("--mapping", f"{HOSTILE}/cp1252.toml"), exit=1,
         rows=4, failures=((4, "read", "bad_encoding"),), accepted=_ids(1, 2, 4),
         attributes={"u1": {"first_name": "Jürgen", "home_city": "Zürich"}}),
    Case("escape-codec", "lf.csv", ("--encoding", "raw_unicode_escape"), exit=2,
         stderr="encoding 'raw_unicode_escape' is not supported"),
    Case("utf-16", "utf16.tsv", exit=2, stderr=f"error: {HOSTILE}/utf16.tsv is UTF-16"),
    Case("latin-1", "latin-1.csv", ("--encoding", "latin-1"), rows=2, accepted=_ids(1, 2),
         attributes={"u2": {"first_name": "Søren", "city": "Århus"}}),
    Case("utf8-bom", "bom.csv", rows=2, accepted=_ids(1, 2),
         attributes={"u2": {"city": "Malmö"}}),
    # --- CSV structure ------------------------------------------------------------------------
    Case("crlf", "crlf.csv", rows=3, accepted=_ids(1, 2, 3), attributes={"u3": {"city": "Paris"}}),
    Case("lf", "lf.csv", rows=3, accepted=_ids(1, 2, 3), attributes={"u3": {"city": "Paris"}}),
    Case("mixed-eol", "mixed-eol.csv", rows=4, accepted=_ids(1, 2, 3, 4),
         attributes={"u2": {"city": "Oslo"}, "u3": {"city": "Paris"}, "u4": {"city": "Rome"}}),
    Case("quoted", "quoted.csv", exit=1, rows=4, failures=((8, "read", "ragged_row"),),
         accepted=_ids(1, 2, 3),
         attributes={"u1": {"note": "first line\nsecond line, with a comma"},
                     "u2": {"note": 'say "hi"; a|b'},
                     "u3": {"note": "three\r\nphysical\r\nlines", "city": "Bern"}}),
    Case("ragged", "ragged.csv", exit=1, rows=5,
         failures=((3, "read", "ragged_row"), (5, "read", "ragged_row")),
         accepted=_ids(1, 3, 5),
         messages={3: "2 fields, the header has 3", 5: "4 fields, the header has 3"}),
    Case("unterminated-quote", "unterminated-quote.csv", exit=1, rows=5,
         failures=((3, "read", "unterminated_quote"),), accepted=_ids(1, 3, 4, 5),
         messages={3: "line 3: a quote opened on this line is not closed"}),
    Case("header-only", "header-only.csv", rows=0, accepted=frozenset()),
    Case("empty-csv", "empty.csv", rows=0, accepted=frozenset()),
    Case("empty-csv-mapped", "empty.csv", ("--mapping", f"{HOSTILE}/cp1252.toml"), rows=0,
         accepted=frozenset()),
    Case("empty-jsonl", "empty.jsonl", rows=0, accepted=frozenset()),
    Case("duplicate-headers", "duplicate-headers.csv", exit=2,
         stderr=f"error: {HOSTILE}/duplicate-headers.csv: duplicate column names in the header: "
         "'city'"),
    Case("excel-trailing-separators", "excel-trailing-separators.csv", rows=2,
         accepted=_ids(1, 2), attributes={"u2": {"first_name": "Bo", "city": "Oslo"}}),
    Case("nul-byte", "nul-byte.csv", exit=1, rows=3, failures=((3, "read", "nul_byte"),),
         accepted=_ids(1, 3)),
    Case("cell-over-max-cell-bytes", "cell-too-large.csv", ("--max-cell-bytes", "200"), exit=1,
         rows=3, failures=((3, "read", "cell_too_large"),), accepted=_ids(1, 3),
         messages={3: "200 bytes"}),
    Case("cell-over-input-max-cell-bytes", "cell-too-large.csv",
         ("--mapping", f"{HOSTILE}/cell-cap.toml"), exit=1, rows=3,
         failures=((3, "read", "cell_too_large"),), accepted=_ids(1, 3),
         attributes={"u3": {"home_city": "Paris"}}),
    Case("max-cell-bytes-absurd", "lf.csv", ("--max-cell-bytes", str(10**20)), exit=2,
         stderr="max_cell_bytes must be from 1 to 1073741824 (1 GiB)"),
    Case("json-cells", "json-cell.csv", ("--mapping", f"{HOSTILE}/json-cell.toml"), exit=1,
         rows=4, failures=((3, "convert", "too_deep"), (4, "convert", "invalid_json")),
         accepted=_ids(1, 4),
         attributes={"u1": {"prefs": {"theme": "dark"}}, "u4": {"prefs": [1]}}),
    Case("cell-over-csv-default-limit", _big_cell(200_000),
         ("--mapping", f"{HOSTILE}/big-cell.toml"), rows=3, accepted=_ids(1, 2, 3)),
    Case("cell-over-1-mib", _big_cell(1024 * 1024 + 1), ("--mapping", f"{HOSTILE}/big-cell.toml"),
         exit=1, rows=3, failures=((3, "read", "cell_too_large"),), accepted=_ids(1, 3)),
    # --- JSONL --------------------------------------------------------------------------------
    Case("blank-lines", "blank-lines.jsonl", rows=3, accepted=_ids(1, 4, 6)),
    Case("invalid-json", "invalid-json.jsonl", exit=1, rows=3,
         failures=((3, "read", "invalid_json"),), accepted=_ids(1, 4)),
    Case("bad-utf8-jsonl", "bad-utf8.jsonl", exit=1, rows=3,
         failures=((2, "read", "bad_encoding"),), accepted=_ids(1, 3)),
    Case("array-line", "array-line.jsonl", exit=1, rows=3,
         failures=((2, "read", "not_an_object"),), accepted=_ids(1, 3)),
    Case("too-deep", "too-deep.jsonl", exit=1, rows=3, failures=((2, "read", "too_deep"),),
         accepted=_ids(1, 3)),
    Case("nan", "nan.jsonl", exit=1, rows=3, failures=((2, "read", "bad_number"),),
         accepted=_ids(1, 3)),
    Case("infinity", "infinity.jsonl", exit=1, rows=4,
         failures=((2, "read", "bad_number"), (3, "read", "bad_number")), accepted=_ids(1, 4)),
    Case("float-overflow", "float-overflow.jsonl", exit=1, rows=3,
         failures=((2, "read", "bad_number"),), accepted=_ids(1, 3)),
    Case("int-outside-64-bits", "int64.jsonl", exit=1, rows=4,
         failures=((2, "read", "bad_number"), (3, "read", "bad_number")), accepted=_ids(1, 4),
         attributes={"u1": {"n": 2**63 - 1}, "u4": {"n": -(2**63)}}),
    # --- gzip ---------------------------------------------------------------------------------
    Case("truncated-gzip", "truncated.csv.gz", exit=1, rows=TRUNCATED_LINES,
         failures=((TRUNCATED_LINES + 1, "read", "truncated_input"),),
         accepted=_ids(*range(1, TRUNCATED_LINES)),
         messages={TRUNCATED_LINES + 1: f"reading stopped at line {TRUNCATED_LINES + 1}"}),
    Case("corrupt-gzip-crc", "corrupt-crc.jsonl.gz", exit=1, rows=301,
         failures=((301, "read", "truncated_input"),), accepted=_ids(*range(1, 301)),
         messages={301: "CRC"}),
    # --- values refused locally ---------------------------------------------------------------
    Case("values-mapped", "values.csv", ("--mapping", f"{HOSTILE}/values.toml"), exit=1, rows=10,
         failures=(
             (3, "validate", "string_too_long"),
             (4, "validate", "string_too_long"),
             (5, "validate", "invalid_quantity"),
             (6, "validate", "invalid_quantity"),
             (7, "validate", "invalid_currency"),
             (8, "convert", "invalid_date"),
             (9, "convert", "invalid_time"),
             (10, "convert", "nonexistent_time"),
         ),
         accepted=frozenset({"v1", "v10"}),
         messages={3: "nickname", 4: "properties.note", 8: "attributes.dob",
                   9: "events[0].time"}),
    Case("values-fragments", "values.jsonl", exit=1, rows=12,
         failures=(
             (2, "validate", "string_too_long"),
             (3, "validate", "string_too_long"),
             (4, "validate", "invalid_property_key"),
             (5, "validate", "reserved_property"),
             (6, "validate", "reserved_property"),
             (7, "validate", "invalid_quantity"),
             (8, "validate", "invalid_quantity"),
             (9, "validate", "invalid_currency"),
             (10, "validate", "invalid_date"),
             (11, "validate", "invalid_time"),
         ),
         accepted=frozenset({"j1", "j12"}),
         messages={4: "'$source'", 5: "event_name", 6: "currency"}),
    *MAPPING_MISTAKES,
]  # fmt: skip


@dataclass
class Outcome:
    done: subprocess.CompletedProcess[str]
    run_dir: Path
    requests: int = 0  # requests the sandbox received
    rejected: int = 0  # objects the sandbox refused (should never happen: refused locally)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> merged attributes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    env["BRAZE_API_KEY"] = KEY
    return env


def _run_case(case: Case, workdir: Path) -> Outcome:
    source = case.source(workdir) if callable(case.source) else f"{HOSTILE}/{case.source}"
    run_dir = workdir / f"run-{case.id}"
    command = [sys.executable, "-m", "importer", "run", source, *case.args, "--quiet"]
    command += ["--run-dir", str(run_dir), "--rate", "0", "--concurrency", "4"]
    with sandbox_in_thread(SandboxSettings(api_key=KEY)) as sandbox:
        done = subprocess.run(
            [*command, "--endpoint", sandbox.url],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outcome = Outcome(done, run_dir, sandbox.stats.requests, sandbox.stats.rejected_objects)
        for array in ARRAYS:
            for obj in sandbox.accepted(array):
                user = outcome.users.setdefault(str(obj.get("external_id")), {})
                if array == "attributes":
                    user.update(obj)
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    workdir = tmp_path_factory.mktemp("hostile")
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {case.id: pool.submit(_run_case, case, workdir) for case in CASES}
        yield {case_id: future.result() for case_id, future in futures.items()}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    done = outcome.done
    assert "Traceback" not in done.stdout + done.stderr
    assert "internal error" not in done.stderr
    assert done.returncode == case.exit, done.stderr
    if case.exit == 2:
        _check_refused_before_sending(case, outcome)
        return
    summary = orjson.loads((outcome.run_dir / "summary.json").read_bytes())
    skipped = sum(summary["skipped"].values())
    assert summary["rows_read"] == summary["delivered"] + summary["failed"] + skipped
    assert summary["rows_read"] == case.rows
    failures = _jsonl(outcome.run_dir / "failures.jsonl")
    assert summary["failed"] == len(failures)
    found = sorted((f["line"], f["stage"], f["error"]) for f in failures)
    assert found == sorted(case.failures)
    messages = {f["line"]: f["message"] for f in failures}
    for line, text in case.messages.items():
        assert text in messages[line]
    if isinstance(case.source, str):  # provenance: the source as given on the command line
        assert {f["source"] for f in failures} <= {f"{HOSTILE}/{case.source}"}
    assert outcome.rejected == 0  # every bad value was refused here, before a request
    if case.accepted is not None:
        assert set(outcome.users) == case.accepted
        assert summary["delivered"] == len(case.accepted)
        if not case.accepted:
            assert outcome.requests == 0
    for user, expected in case.attributes.items():
        got = outcome.users[user]
        assert {key: got.get(key) for key in expected} == expected


def _check_refused_before_sending(case: Case, outcome: Outcome) -> None:
    lines = [line for line in outcome.done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.done.stderr
    assert case.stderr is not None and case.stderr in lines[0]
    assert outcome.requests == 0


def test_every_fixture_file_is_used_and_documented() -> None:
    """The README table lists every file, and every data file is exercised by some case."""
    directory = ROOT / HOSTILE
    readme = (directory / "README.md").read_text(encoding="utf-8")
    used = {case.source for case in CASES if isinstance(case.source, str)}
    used |= {Path(arg).name for case in CASES for arg in case.args if arg.startswith(HOSTILE)}
    for path in directory.iterdir():
        if path.name == "README.md":
            continue
        assert f"`{path.name}`" in readme, path.name
        assert path.name in used, path.name
    total = sum(path.stat().st_size for path in directory.iterdir())
    assert total < 50_000


def test_truncated_gzip_fixture_is_really_truncated() -> None:
    """Guards the fixture itself: a plain gzip reader must fail on it."""
    with pytest.raises(EOFError), gzip.open(ROOT / HOSTILE / "truncated.csv.gz") as stream:
        stream.read()
