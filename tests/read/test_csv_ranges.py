"""A CSV source parsed in ranges (importer.read.csv_ranges) gives exactly what it gives parsed in
one go: the same records and failures at the same lines, whatever the quoting, the encoding, the
line ends, and however the ranges fall."""

from __future__ import annotations

import csv
import gzip
from collections import deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from importer.config import ReadOptions
from importer.models import RowFailure, SourceRow
from importer.read.csv_ranges import LineRecord, Ranges, RangeText, parse_range
from importer.read.lines import Block
from importer.read.source import open_source
from tests.read.test_source import CSV_BYTES, SETTINGS

Item = SourceRow | RowFailure


@pytest.fixture(autouse=True)
def _keep_csv_field_limit() -> Iterator[None]:
    limit = csv.field_size_limit()
    yield
    csv.field_size_limit(limit)


def serial(path: Path, **options: Any) -> list[Item]:
    with open_source(str(path), ReadOptions(**options)) as source:
        return list(source.rows())


def ranged(path: Path, lines: int, depth: int, **options: Any) -> tuple[list[Item], bool]:
    """What the engine makes of the source with a pool (importer.runner.engine): ranges
    parsed alone, ``depth`` of them handed out ahead; at a dirty one, that range and all after
    it parsed again in one go. Also: whether that happened."""
    with open_source(str(path), ReadOptions(**options)) as source:
        ranges = source.ranges(lines)
        assert ranges is not None
        items: list[Item] = []
        pending: deque[Block] = deque()
        for block in ranges:
            pending.append(block)
            while len(pending) >= depth:
                if not _parsed(ranges, pending, items):
                    return items, True
        while pending:
            if not _parsed(ranges, pending, items):
                return items, True
        failure = ranges.truncated()
        return items + ([failure] if failure else []), False


def _parsed(ranges: Ranges, pending: deque[Block], items: list[Item]) -> bool:
    block = pending.popleft()
    parser = parse_range(ranges.layout, block.first_line, b"".join(block.lines), block.issues)
    found = list(parser.records())
    if parser.dirty:
        again = chain([block], pending, ranges.rest())
        items += ranges.reparse(again, block.first_line)
        return False
    text = RangeText(ranges.layout, block)
    for item in found:  # a converted row's record, parsed again from the range when asked
        if isinstance(item, SourceRow):
            assert LineRecord(text, item.ref.line).as_dict() == item.record
    items += found
    return True


CASES = {
    "multi-line quoted cells": b'id,note\r\n1,"two\r\nlines"\r\n2,plain\n3,"three\nphysical\nlines"'
    b'\r4,after cr\n5,"a ""quoted"" word\non two lines"\n6,end',
    "odd rows": b"a,b\n1,x\n\n2\n3,y,z\n  \n4,w\n",
    "bad bytes and NULs": b'a,b\n1,x\n2,\xff\xfe\n3,ok\n4,n\x00l\n5,"q\xff\nz"\n6,y\n',
    "unterminated quote mid-file": b'id,name,note\n1,"Alice,hello\n2,Bob,hi\n3,"Carol",x\n4,Dan,y\n'
    + b"".join(b"%d,n%d,t\n" % (i, i) for i in range(5, 30)),
    "unterminated quote at the end": b'id,name\n1,a\n2,"open\n3,c\n4,d',
    "bad quoting on one line": b'a,b\n1,"say "hi" now"\n2,x\n3,"ok"\n',
    "quotes in unquoted cells": b'a,b\n1,x"y\n2,"z\n3,w"\n4,v\n5,u\n',
    "one column": b'a\n1\n \n""\n2\n',
    "BOM and CRLF": b'\xef\xbb\xbfid,x\r\n1,a\r\n2,"b\r\nc"\r\n3,d\r\n',
    "no final line end": b"a,b\n1,2\n3,4",
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize(("lines", "depth"), [(1, 1), (2, 3), (3, 2), (7, 1), (500, 3)])
def test_ranges_give_what_one_pass_gives(
    tmp_path: Path, data: bytes, lines: int, depth: int
) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    expected = serial(path)
    assert ranged(path, lines, depth)[0] == expected
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(data))
    assert ranged(gz, lines, depth)[0] == serial(gz)


def test_a_clean_file_is_never_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(CASES["multi-line quoted cells"] + b"\n" + CASES["odd rows"][4:])
    assert ranged(path, 1, 2) == (serial(path), False)


def test_an_unterminated_quote_is_parsed_again_from_its_range(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(CASES["unterminated quote mid-file"])
    items, again = ranged(path, 2, 3)
    assert again and items == serial(path)
    assert [(i.ref.line, i.error) for i in items if isinstance(i, RowFailure)] == [
        (2, "unterminated_quote")
    ]


def test_long_lines_cells_and_runaway_quotes(tmp_path: Path) -> None:
    euros = "€" * 400  # 400 characters but 1,200 bytes
    body = "".join(f"{i},row{i}\n" for i in range(10, 210))
    data = (
        f"a,b\n1,{'x' * 1001}\n2,ok\n3,{euros}\n4,{'y' * 1000}\n5,"
        + "z" * 600_000
        + f'\r\n6,y\n7,"never closed\n{body}'
    ).encode()
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    expected = serial(path, max_cell_bytes=1000)
    codes = {i.error for i in expected if isinstance(i, RowFailure)}
    assert codes == {"cell_too_large", "line_too_long", "unterminated_quote"}
    for lines, depth in [(1, 1), (3, 2), (100, 3)]:
        assert ranged(path, lines, depth, max_cell_bytes=1000)[0] == expected


@pytest.mark.parametrize("damage", ["truncate", "cut inside quotes"])
def test_a_broken_gzip_stream_ends_as_in_one_pass(tmp_path: Path, damage: str) -> None:
    plain = b"id,x\n" + b"".join(b'%d,"%d\n%d"\n' % (i, i, i * 7) for i in range(30_000))
    packed = gzip.compress(plain)
    path = tmp_path / "a.csv.gz"
    path.write_bytes(packed[: len(packed) // 2 + (0 if damage == "truncate" else 7)])
    expected = serial(path)
    last = expected[-1]
    assert isinstance(last, RowFailure) and last.error == "truncated_input"
    assert ranged(path, 500, 3)[0] == expected
    assert ranged(path, 3, 1)[0] == expected


def test_an_unclosed_quote_is_handed_out_past_the_carry_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importer.read import csv_ranges

    monkeypatch.setattr(csv_ranges, "CARRY_LIMIT_BYTES", 100)
    path = tmp_path / "a.csv"
    body = b"".join(b"%d,row%d\n" % (i, i) for i in range(3, 400))
    path.write_bytes(b'id,name\n1,"never closed\n' + body)
    with open_source(str(path), ReadOptions(max_cell_bytes=100_000)) as source:
        ranges = source.ranges(10)
        assert ranges is not None
        sizes = [sum(map(len, block.lines)) for block in ranges]
    assert len(sizes) > 10 and max(sizes) < 300  # the carry never grew past ~the limit
    assert ranged(path, 10, 2, max_cell_bytes=100_000)[0] == serial(path, max_cell_bytes=100_000)


@SETTINGS
@given(data=CSV_BYTES)
def test_arbitrary_bytes_in_ranges_give_what_one_pass_gives(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(b"id,name\n" + data)
    expected = serial(path, max_cell_bytes=50)
    for lines, depth in [(1, 1), (2, 2), (5, 3)]:
        assert ranged(path, lines, depth, max_cell_bytes=50)[0] == expected
