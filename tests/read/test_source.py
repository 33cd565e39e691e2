from __future__ import annotations

import csv
import gzip
import io
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from importer.config import ReadOptions
from importer.errors import InputError
from importer.models import RowFailure, RowRef, SourceRow
from importer.read.source import Source, fingerprint, open_source, open_stream

Item = SourceRow | RowFailure
ROOT = Path(__file__).resolve().parents[2]


def read(path: Path, data: bytes, **options: Any) -> tuple[Source, list[Item]]:
    path.write_bytes(data)
    with open_source(str(path), ReadOptions(**options)) as source:
        return source, list(source.rows())


def rows(items: list[Item]) -> list[tuple[int, dict[str, Any]]]:
    return [(i.ref.line, i.record) for i in items if isinstance(i, SourceRow)]


def failures(items: list[Item]) -> list[tuple[int, str]]:
    return [(i.ref.line, i.error) for i in items if isinstance(i, RowFailure)]


def lines_of(items: list[Item]) -> list[int]:
    return [i.ref.line for i in items]


@pytest.fixture(autouse=True)
def _keep_csv_field_limit() -> Any:
    """The reader sets the csv module's (process-wide) field limit; undo small test values."""
    limit = csv.field_size_limit()
    yield
    csv.field_size_limit(limit)


# -- CSV structure and line numbers --


def test_line_numbers_follow_physical_lines_across_quoted_newlines(tmp_path: Path) -> None:
    data = b'id,note\r\n1,"two\r\nlines"\r\n2,plain\n3,"three\nphysical\nlines"\r4,after cr\n'
    source, items = read(tmp_path / "a.csv", data)
    assert source.header == ("id", "note")
    assert rows(items) == [
        (2, {"id": "1", "note": "two\r\nlines"}),
        (4, {"id": "2", "note": "plain"}),
        (5, {"id": "3", "note": "three\nphysical\nlines"}),
        (8, {"id": "4", "note": "after cr"}),
    ]
    assert all(i.ref.source == str(tmp_path / "a.csv") for i in items)


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b"\n\nid,x\n\n1,a\n   \n\r\n2,b")
    assert rows(items) == [(5, {"id": "1", "x": "a"}), (8, {"id": "2", "x": "b"})]


def test_cells_are_given_raw_and_header_trimmed(tmp_path: Path) -> None:
    source, items = read(tmp_path / "a.csv", b" id , name \n 7 ,  Ann  \n")
    assert source.header == ("id", "name")
    assert rows(items) == [(2, {"id": " 7 ", "name": "  Ann  "})]


@pytest.mark.parametrize(
    ("name", "data", "options", "delimiter"),
    [
        ("a.csv", b"id;name\n1;x\n", {}, ";"),
        ("a.csv", b"id|name\n1|x\n", {}, "|"),
        ("a.csv", b"id\tname\n1\tx\n", {}, "\t"),
        ("a.tsv", b"id\tname\n1\tx\n", {}, "\t"),
        ("a.txt", b"id:name\n1:x\n", {"delimiter": ":", "format": "csv"}, ":"),
    ],
)
def test_delimiter_sniffed_from_extension_or_given(
    tmp_path: Path, name: str, data: bytes, options: dict[str, Any], delimiter: str
) -> None:
    source, items = read(tmp_path / name, data, **options)
    assert source.delimiter == delimiter
    assert rows(items) == [(2, {"id": "1", "name": "x"})]


def test_ragged_rows_fail_and_the_run_goes_on(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b"a,b,c\n1,2\n1,2,3\n1,2,3,4\n")
    assert failures(items) == [(2, "ragged_row"), (4, "ragged_row")]
    assert rows(items) == [(3, {"a": "1", "b": "2", "c": "3"})]
    failure = items[0]
    assert isinstance(failure, RowFailure)
    assert failure.stage == "read"
    assert "2 fields" in failure.message and "3" in failure.message
    assert failure.record == "1,2"


def test_nul_byte_fails_its_row_only(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b"a,b\n1,x\x00y\n2,z\n")
    assert failures(items) == [(2, "nul_byte")]
    assert rows(items) == [(3, {"a": "2", "b": "z"})]


def test_empty_and_header_only_files_have_no_rows(tmp_path: Path) -> None:
    for data, header in [(b"", ()), (b"\n\n", ()), (b"\xef\xbb\xbf", ()), (b"a,b\r\n", ("a", "b"))]:
        source, items = read(tmp_path / "a.csv", data)
        assert (source.header, items) == (header, [])


def test_duplicate_header_names_are_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"id,Email,name,Email ,id\n1,2,3,4,5\n")
    with pytest.raises(InputError, match=r"duplicate column names.*'Email', 'id'"):
        open_source(str(tmp_path / "a.csv"), ReadOptions())


# -- encodings --


def test_utf8_bom_is_stripped_from_the_header(tmp_path: Path) -> None:
    source, items = read(tmp_path / "a.csv", b"\xef\xbb\xbfid,name\n1,\xc3\xa9\n")
    assert source.header == ("id", "name")
    assert rows(items) == [(2, {"id": "1", "name": "é"})]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "Windows-1252"])
def test_single_byte_encodings(tmp_path: Path, encoding: str) -> None:
    data = "Name,Stadt\nMüller,Köln\n".encode("cp1252")
    _, items = read(tmp_path / "a.csv", data, encoding=encoding)
    assert rows(items) == [(2, {"Name": "Müller", "Stadt": "Köln"})]


def test_bad_bytes_fail_their_row_with_the_line(tmp_path: Path) -> None:
    data = b'id,name\n1,ok\n2,M\xfcller\n3,"multi\nline \xff"\n4,fine\n'
    _, items = read(tmp_path / "a.csv", data)
    assert failures(items) == [(3, "bad_encoding"), (4, "bad_encoding")]
    assert rows(items) == [(2, {"id": "1", "name": "ok"}), (6, {"id": "4", "name": "fine"})]
    failure = items[1]
    assert isinstance(failure, RowFailure)
    assert "line 3" in failure.message and "utf-8" in failure.message
    assert failure.record == "2,M\ufffdller"


def test_cp1252_undefined_byte_fails_its_row(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b"a\nx\x81\ny\n", encoding="cp1252")
    assert failures(items) == [(2, "bad_encoding")]
    assert rows(items) == [(3, {"a": "y"})]


def test_bad_bytes_in_the_header_are_an_input_error_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"id,M\xfcnze\n1,2\n")
    with pytest.raises(InputError, match=r"header.*--encoding cp1252"):
        open_source(str(tmp_path / "a.csv"), ReadOptions())


@pytest.mark.parametrize(("encoding", "match"), [("nope-42", "unknown"), ("utf-16", "UTF-8")])
def test_unusable_encoding_names(tmp_path: Path, encoding: str, match: str) -> None:
    (tmp_path / "a.csv").write_bytes(b"a\n1\n")
    with pytest.raises(InputError, match=match):
        open_source(str(tmp_path / "a.csv"), ReadOptions(encoding=encoding))


# -- cell sizes and quotes --


def test_cells_past_the_csv_default_limit_are_read(tmp_path: Path) -> None:
    big = "x" * 200_000  # the csv module refuses more than 131,072 by default
    _, items = read(tmp_path / "a.csv", f'a,b\n1,"{big}"\n2,{big}\n'.encode())
    assert rows(items) == [(2, {"a": "1", "b": big}), (3, {"a": "2", "b": big})]


def test_cell_too_large_fails_its_row(tmp_path: Path) -> None:
    euros = "€" * 400  # 400 characters but 1,200 bytes
    data = f"a,b\n1,{'x' * 1001}\n2,ok\n3,{euros}\n4,{'y' * 1000}\n".encode()
    _, items = read(tmp_path / "a.csv", data, max_cell_bytes=1000)
    assert failures(items) == [(2, "cell_too_large"), (4, "cell_too_large")]
    assert [line for line, _ in rows(items)] == [3, 5]


def test_unterminated_quote_mid_file_fails_one_line_and_reading_resumes(tmp_path: Path) -> None:
    data = b'id,name,note\n1,"Alice,hello\n2,Bob,hi\n3,"Carol",x\n4,Dan,y\n'
    _, items = read(tmp_path / "a.csv", data)
    assert failures(items) == [(2, "unterminated_quote")]
    assert [line for line, _ in rows(items)] == [3, 4, 5]
    failure = items[0]
    assert isinstance(failure, RowFailure)
    assert "line 2" in failure.message and failure.record == '1,"Alice,hello'


def test_unterminated_quote_running_to_the_end_of_file(tmp_path: Path) -> None:
    data = b'id,name\n1,a\n2,"open\n3,c\n4,d'
    _, items = read(tmp_path / "a.csv", data)
    assert failures(items) == [(3, "unterminated_quote")]
    assert rows(items) == [
        (2, {"id": "1", "name": "a"}),
        (4, {"id": "3", "name": "c"}),
        (5, {"id": "4", "name": "d"}),
    ]
    _, items = read(tmp_path / "b.csv", b'id,name\n1,"open at the last line\n')
    assert failures(items) == [(2, "unterminated_quote")]


def test_unterminated_quote_is_cut_at_max_cell_bytes(tmp_path: Path) -> None:
    body = "".join(f"{i},row{i}\n" for i in range(3, 203))
    data = f'id,name\n1,"never closed\n{body}'.encode()
    _, items = read(tmp_path / "a.csv", data, max_cell_bytes=100)
    assert failures(items) == [(2, "unterminated_quote")]
    assert [line for line, _ in rows(items)] == list(range(3, 203))


def test_quote_error_on_one_line_is_bad_quoting(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b'a,b\n1,"say "hi" now"\n2,x\n')
    assert failures(items) == [(2, "bad_quoting")]
    assert rows(items) == [(3, {"a": "2", "b": "x"})]


def test_a_line_past_the_memory_cap_is_skipped(tmp_path: Path) -> None:
    huge = (
        b"z" * 600_000
    )  # longer than a read block; cap: 16 * max_cell_bytes + 64 KiB = 67,136 bytes here
    _, items = read(tmp_path / "a.csv", b"a,b\n1,x\n2," + huge + b"\r\n3,y\n", max_cell_bytes=100)
    assert failures(items) == [(3, "line_too_long")]
    assert [line for line, _ in rows(items)] == [2, 4]
    failure = items[1]
    assert isinstance(failure, RowFailure)
    assert isinstance(failure.record, str) and 0 < len(failure.record) <= 10_000


# -- files, gzip, stdin --


def test_gzip_csv_and_progress_in_compressed_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"id,x\n" + b"".join(b"%d,v\n" % i for i in range(5000))))
    with open_source(str(path), ReadOptions()) as source:
        assert source.format == "csv" and source.size == path.stat().st_size
        items = list(source.rows())
        assert source.bytes_read == path.stat().st_size
    assert len(rows(items)) == 5000 and failures(items) == []
    assert rows(items)[-1] == (5001, {"id": "4999", "x": "v"})


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_broken_gzip_ends_with_truncated_input(tmp_path: Path, damage: str) -> None:
    plain = b"id,x\n" + b"".join(b"%d,%d\n" % (i, i * 7919 % 10007) for i in range(100_000))
    packed = gzip.compress(plain)
    if damage == "truncate":
        packed = packed[: len(packed) // 2]
    else:
        middle = len(packed) // 2
        packed = packed[:middle] + bytes(b ^ 0x55 for b in packed[middle : middle + 64])
        packed += packed[middle + 64 :]
    _, items = read(tmp_path / "a.csv.gz", packed)
    last = items[-1]
    assert isinstance(last, RowFailure) and last.error == "truncated_input"
    assert last.record is None and last.stage == "read"
    assert f"line {last.ref.line}" in last.message
    good = rows(items)
    assert len(good) > 1000 and good[:1000] == [
        (n, {"id": str(n - 2), "x": str((n - 2) * 7919 % 10007)}) for n in range(2, 1002)
    ]
    if damage == "corrupt":
        return  # what a corrupt deflate stream yields before the error is detected varies
    assert failures(items) == [(last.ref.line, "truncated_input")]
    assert good == [(n, {"id": str(n - 2), "x": str((n - 2) * 7919 % 10007)}) for n, _ in good]
    assert [n for n, _ in good] == list(range(2, last.ref.line))


def test_gzip_jsonl_truncated(tmp_path: Path) -> None:
    plain = b"".join(b'{"id": %d}\n' % i for i in range(50_000))
    _, items = read(tmp_path / "a.ndjson.gz", gzip.compress(plain)[:-200])
    assert isinstance(items[-1], RowFailure) and items[-1].error == "truncated_input"
    assert lines_of(items) == list(range(1, items[-1].ref.line + 1))


def test_gzip_is_recognised_by_content(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", gzip.compress(b"a\n1\n"))
    assert rows(items) == [(2, {"a": "1"})]


def test_format_from_options_overrides_extension(tmp_path: Path) -> None:
    _, items = read(tmp_path / "a.csv", b'{"a": 1}\n', format="jsonl")
    assert rows(items) == [(1, {"a": 1})]


@pytest.mark.parametrize(
    ("name", "match"),
    [("missing.csv", "cannot read"), ("dir.csv", "directory"), ("a.xlsx", "format")],
)
def test_unusable_sources(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "a.xlsx").write_bytes(b"a\n")
    with pytest.raises(InputError, match=match):
        open_source(str(tmp_path / name), ReadOptions())


def test_stdin_needs_a_format() -> None:
    with pytest.raises(InputError, match="--format"):
        open_source("-", ReadOptions())


def test_stdin_is_read_as_binary_in_a_subprocess(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from importer.config import ReadOptions\n"
        "from importer.read.source import open_source, fingerprint\n"
        "with open_source('-', ReadOptions(format='csv', encoding='cp1252')) as s:\n"
        "    found = [[i.ref.line, i.record.as_dict()] for i in s.rows()]\n"
        "    print(json.dumps([s.size, fingerprint('-'), found]))\n"
    )
    data = gzip.compress(b"\xef\xbb\xbfid,name\r\n1," + "Zoë".encode("cp1252") + b"\r\n")
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, None, [[2, {"id": "1", "name": "Zoë"}]]]


def test_open_stream_reads_a_file_object() -> None:
    with open_stream("-", io.BytesIO(b"a,b\n1,2\n"), ReadOptions(format="csv")) as source:
        assert rows(list(source.rows())) == [(2, {"a": "1", "b": "2"})]


def test_rows_may_be_taken_once(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"a\n1\n")
    with open_source(str(tmp_path / "a.csv"), ReadOptions()) as source:
        source.rows()
        with pytest.raises(InputError):
            source.rows()


def test_fingerprint_is_stable_and_sees_both_ends(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a" * 3_000_000)
    first = fingerprint(str(path))
    assert first == fingerprint(str(path)) and first is not None
    path.write_bytes(b"a" * 2_999_999 + b"b")
    assert fingerprint(str(path)) != first
    assert fingerprint("-") is None
    with pytest.raises(InputError):
        fingerprint(str(tmp_path / "missing.csv"))


# -- JSONL --


def test_jsonl_rows_and_line_numbers(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"id": 1}\r\n\r\n  \n{"id": "x", "a": {"b": [1, 2]}}\n{"id": 3}'
    source, items = read(tmp_path / "a.jsonl", data)
    assert source.header is None and source.format == "jsonl"
    assert rows(items) == [(1, {"id": 1}), (4, {"id": "x", "a": {"b": [1, 2]}}), (5, {"id": 3})]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"id": 1', "invalid_json"),
        (b"not json", "invalid_json"),
        (b'{"id": 1} {"id": 2}', "invalid_json"),
        (b'[{"id": 1}]', "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}", "too_deep"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b'{"a": NaN}', "bad_number"),
        (b'{"a": -Infinity}', "bad_number"),
        (b'{"a": 1e400}', "bad_number"),
        (b'{"a": 9223372036854775808}', "bad_number"),
        (b'{"a": [-9223372036854775809]}', "bad_number"),
        (b'{"a": 123456789012345678901234567890}', "bad_number"),
        (b'{"a": "\xff"}', "bad_encoding"),
    ],
)
def test_jsonl_bad_lines_fail_alone(tmp_path: Path, line: bytes, code: str) -> None:
    _, items = read(tmp_path / "a.jsonl", b'{"id": 1}\n' + line + b'\n{"id": 3}\n')
    assert failures(items) == [(2, code)]
    assert rows(items) == [(1, {"id": 1}), (3, {"id": 3})]
    failure = items[1]
    assert isinstance(failure, RowFailure) and "line 2" in failure.message


@pytest.mark.parametrize(
    "line",
    [
        b'{"a": 9223372036854775807, "b": -9223372036854775808}',
        b'{"phone": "12345678901234567890123"}',
        b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}",
        b'{"note": "NaN and Infinity are fine in strings", "x": 1.5e308}',
    ],
)
def test_jsonl_edge_values_that_are_fine(tmp_path: Path, line: bytes) -> None:
    _, items = read(tmp_path / "a.jsonl", line + b"\n")
    assert rows(items) == [(1, json.loads(line))]


def test_jsonl_in_cp1252_and_long_lines(tmp_path: Path) -> None:
    data = '{"n": "Müller"}\n'.encode("cp1252") + b'{"x": "' + b"z" * 600_000 + b'"}\n{"n": 3}\n'
    _, items = read(tmp_path / "a.jsonl", data, encoding="cp1252", max_cell_bytes=1000)
    assert rows(items) == [(1, {"n": "Müller"}), (3, {"n": 3})]
    assert failures(items) == [(2, "line_too_long")]


# -- properties: arbitrary bytes never crash, every record is accounted for --

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CSV_BYTES = st.lists(
    st.sampled_from(
        [b"a", b"1", b",", b";", b'"', b"\n", b"\r", b"\r\n", b" ", b"\x00", b"\xff", b"\xc3\xa9"]
    )
    | st.binary(max_size=4),
    max_size=60,
).map(b"".join)


def _read_or_input_error(path: Path, data: bytes, **options: Any) -> list[Item] | None:
    path.write_bytes(data)
    try:
        with open_source(str(path), ReadOptions(**options)) as source:
            return list(source.rows())
    except InputError:
        return None


def _blank(line: bytes) -> bool:
    """As the reader decides: a record of one cell holding only white space is no record,
    whether the cell is quoted (``" "``, ``""``) or not. A quote opens a cell only as its first
    character: `` ""`` is a cell holding a space and two quotes, a record."""
    text = line.decode("utf-8", "replace").rstrip()
    quoted = len(text) >= 2 and text[0] == text[-1] == '"'
    return not text.strip() or (quoted and not text[1:-1].strip())


def _content_lines(data: bytes, start: int) -> list[int]:
    lines = data.splitlines()
    return [n for n, line in enumerate(lines, 1) if n >= start and not _blank(line)]


@SETTINGS
@given(data=CSV_BYTES)
@example(data=b'" "')  # a quoted blank cell is a blank line (found by hypothesis)
@example(data=b'a\n ""')  # a space before the quotes: a record (found by hypothesis)
def test_arbitrary_csv_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    _read_or_input_error(tmp_path / "any.csv", data)
    items = _read_or_input_error(tmp_path / "any2.csv", b"id,name\n" + data, max_cell_bytes=50)
    assert items is not None  # a good header: nothing after it can stop the run
    numbers = lines_of(items)
    assert numbers == sorted(set(numbers))
    content = _content_lines(b"id,name\n" + data, 2)
    if content:
        assert items and numbers[0] >= 2 and numbers[-1] <= content[-1]
    if b'"' not in data and content:
        assert numbers == content  # without quotes every non-blank line is one record


@SETTINGS
@given(data=CSV_BYTES | st.binary(max_size=200))
def test_arbitrary_jsonl_bytes_account_for_every_line(tmp_path: Path, data: bytes) -> None:
    items = _read_or_input_error(tmp_path / "any.jsonl", data)
    assert items is not None
    body = data.removeprefix(b"\xef\xbb\xbf")
    if data.startswith(b"\x1f\x8b"):
        assert failures(items)[-1][1] == "truncated_input"
        return
    expected = [n for n, line in enumerate(body.splitlines(), 1) if line.strip()]
    assert lines_of(items) == expected


@SETTINGS
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_arbitrary_json_values(tmp_path: Path, value: Any) -> None:
    line = json.dumps({"v": value}).encode()
    items = _read_or_input_error(tmp_path / "v.jsonl", line + b"\n")
    assert items is not None and len(items) == 1
    if isinstance(items[0], SourceRow):
        assert items[0].record == json.loads(line)
    else:
        assert items[0].error in {"bad_number", "too_deep"}


CELL = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)


@SETTINGS
@given(
    width=st.integers(1, 4),
    cells=st.lists(CELL, max_size=40),
    # (Python 3.11's writer leaves a lone CR unquoted unless the terminator has one: QUOTE_ALL.)
    style=st.sampled_from(
        [("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL), ("\n", csv.QUOTE_ALL)]
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_written_csv_reads_back_with_physical_line_numbers(
    tmp_path: Path, width: int, cells: list[str], style: tuple[str, Literal[0, 1]], delimiter: str
) -> None:
    terminator, quoting = style
    header = [f"c{i}" for i in range(width)]
    records = [cells[i : i + width] for i in range(0, len(cells) - width + 1, width)]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=quoting)
    writer.writerow(header)
    expected = []
    line = 2
    for record in records:
        before = out.tell()
        writer.writerow(record)
        text = out.getvalue()[before:]
        if width > 1 or record[0].strip():
            expected.append((line, dict(zip(header, record, strict=True))))
        line += len(text.encode().splitlines())
    _, items = read(tmp_path / "w.csv", out.getvalue().encode(), delimiter=delimiter)
    assert items == [SourceRow(RowRef(str(tmp_path / "w.csv"), n), r) for n, r in expected]


def test_close_releases_the_file_but_not_a_borrowed_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"a\n1\n"))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with open_source(str(path), ReadOptions()) as source:
            list(source.rows())
    assert len(os.listdir("/proc/self/fd")) == before
    borrowed = io.BytesIO(b"a\n1\n")
    open_stream("-", borrowed, ReadOptions(format="csv")).close()
    assert not borrowed.closed


def test_rows_piped_in_are_read_as_they_come_not_a_block_at_a_time() -> None:
    """A slow producer (``pg_dump … | braze-import run -``): its first rows are read while it
    is still writing, not once 256 KiB arrived or it ended. The start, one byte at a time, is
    still read as a whole (gzip magic, BOM)."""
    read_end, write_end = os.pipe()
    for byte in b"\xef\xbb\xbfa,b\n":
        os.write(write_end, bytes([byte]))
    os.write(write_end, b"1,2\n3,4\n")
    got: queue.Queue[SourceRow | RowFailure] = queue.Queue()
    with (
        open(read_end, "rb") as stream,
        open_stream("-", stream, ReadOptions(format="csv")) as source,
    ):
        reader = threading.Thread(target=lambda: [got.put(row) for row in source.rows()])
        reader.start()
        try:
            first = [got.get(timeout=60) for _ in range(2)]  # the writer has not finished
        finally:
            os.close(write_end)
            reader.join()
    assert [row.record.as_dict() for row in first if isinstance(row, SourceRow)] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
    ]
    assert got.empty()


class _Trickle(io.RawIOBase):
    """A producer that hands over one byte per read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            return 0
        buffer[0], self._data = self._data[0], self._data[1:]
        return 1


@pytest.mark.parametrize("start", [b"", b"\xef\xbb\xbf"])
def test_a_stream_arriving_a_byte_at_a_time_is_still_recognised_as_gzip_or_bom(
    start: bytes,
) -> None:
    text = start + b"a,b\n1,2\n"
    for data, name in ((gzip.compress(text), "gzip"), (text, "plain")):
        stream = io.BufferedReader(_Trickle(data), buffer_size=1)  # read1: one byte
        with open_stream("-", stream, ReadOptions(format="csv")) as source:
            rows = list(source.rows())
        assert [r.record.as_dict() for r in rows if isinstance(r, SourceRow)] == [
            {"a": "1", "b": "2"}
        ], name
