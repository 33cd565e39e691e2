"""Property-based: arbitrary bytes and arbitrary JSON through reader and converter, no network.

For any input nothing raises (but InputError / MappingError for an unusable header), and every
physical record comes out exactly once: one outcome per non-blank JSONL line, and per non-blank
CSV line when no quotes join lines. Each SourceRow converts to exactly one Item, RowFailure or
RowSkipped with its own line, and every Item is something the packer can send: each object
passes Braze's rules and serialises with orjson (whose writer is stricter than its reader: 254
levels, no lone surrogates, 64-bit integers).
"""

from __future__ import annotations

import io
import tomllib
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from importer.config import ReadOptions
from importer.convert.converter import Converter
from importer.errors import ConfigError
from importer.mapping.document import MappingDoc
from importer.mapping.load import compile_mapping, default_mapping
from importer.models import ARRAYS, Item, RowFailure, RowSkipped, SourceRow
from importer.read.source import open_stream
from importer.rules.objects import check_object

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMNS = ("external_id", "name", "n", "f", "b", "t", "d", "arr", "prefs", "qty", "cur", "note")
HEADER = ",".join(COLUMNS).encode() + b"\n"
MAPPING_TOML = """
[input]
null_values = ["NULL"]

[identity]
external_id = "external_id"

[attributes]
name = "name"
n = { column = "n", type = "integer" }
f = { column = "f", type = "float", default = 0.5 }
b = { column = "b", type = "boolean" }
t = { column = "t", type = "time", timezone = "Europe/Berlin" }
d = { column = "d", type = "date", format = "%d.%m.%Y" }
arr = { column = "arr", type = "array", separator = "|" }
prefs = { column = "prefs", type = "json" }
gender = { column = "name", map = { Ann = "F", Bo = "M" }, empty = "null" }

[[events]]
name = { value = "fuzzed" }
time = "t"
[events.properties]
note = "note"
n = { column = "n", type = "integer" }

[[purchases]]
product_id = "name"
currency = "cur"
price = { column = "f", type = "float" }
quantity = { column = "qty", type = "integer" }
time = { column = "d", type = "time", format = "%d.%m.%Y" }
"""
MAPPED = Converter(
    compile_mapping(MappingDoc("fuzz.toml", MAPPING_TOML), tomllib.loads(MAPPING_TOML))
)
UNMAPPED = Converter(default_mapping(None, "fuzz.jsonl"))

# --- strategies -------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
CELL_VALUES = [
    "", " ", "NULL", "u1", "Ann", "Bo", "42", "-7", "9223372036854775808", "1e400", "nan", "0.5",
    "yes", "no", "maybe", "2024-05-01T10:00:00Z", "2024-03-31 02:30", "2024-13-01", "31.02.1990",
    "21.07.1959", "a|b||c", "|", '{"k": 1}', "[1, [2]]", "[" * 300 + "]" * 300, "{", "EUR", "XYZ",
    "0", "101", "x" * 300, "$x", "\x00", "é", "\u2028",
]  # fmt: skip
HOSTILE_CELL = st.sampled_from(CELL_VALUES) | TEXT.map(
    lambda s: s.replace('"', "").replace(",", "")
)
GOOD_CELLS = {
    "external_id": ["u1", "u2", "42"],
    "name": ["Ann", "Bo", "Zoë"],
    "n": ["42", "-7", ""],
    "f": ["0.5", "3", ""],
    "b": ["yes", "no", "1", ""],
    "t": ["2024-05-01T10:00:00Z", "2024-05-01 10:00", "2024-05-01T10:00:00+02:00", ""],
    "d": ["21.07.1959", "01.01.2000", ""],
    "arr": ["a|b||c", "|", "x", ""],
    # 64 levels are fine; 300 parse (orjson reads 1024) but could not be written again.
    "prefs": ["[1]", "{}", "null", "2", "", "[" * 64 + "]" * 64, "[" * 300 + "]" * 300],
    "qty": ["1", "100", ""],
    "cur": ["EUR", "USD", ""],
    "note": ["hello", "ü", ""],
}
ENDING = st.sampled_from([b"\n", b"\r\n", b"\r", b""])
NOISE = st.sampled_from([b'"', b'""', b",", b"\n", b"\r", b"\x00", b"\xff", b"\xef\xbb\xbf"])


@st.composite
def csv_rows(draw: st.DrawFn) -> bytes:
    """Rows of mostly plausible cells with hostile ones among them, ragged at times, with noise
    bytes spliced in now and then."""
    out = b""
    for _ in range(draw(st.integers(0, 8))):
        cells = [
            draw(st.sampled_from(GOOD_CELLS[column]))
            if draw(st.integers(0, 9))
            else draw(HOSTILE_CELL)
            for column in COLUMNS
        ]
        cells += [draw(HOSTILE_CELL) for _ in range(draw(st.sampled_from([0] * 8 + [1])))]
        if draw(st.integers(0, 8)) == 0:
            cells.pop()
        out += ",".join(cells).encode() + draw(ENDING)
        if draw(st.integers(0, 7)) == 0:
            out += draw(NOISE | st.binary(max_size=6))
    return out


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(CELL_VALUES)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from([*COLUMNS, "email", "phone", "braze_id", "user_alias", "properties"]) | TEXT
IDS = st.sampled_from(["u1", "u2"]) | JSON_SCALARS
TIMES = st.sampled_from(["2024-05-01T10:00:00Z", "2023-02-30T10:00:00Z", "soon"]) | JSON_SCALARS


def _object(required: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A Braze-like object: an identifier (usually), the given fields, then anything."""
    return st.builds(
        lambda base, rest: {**rest, **base},
        st.fixed_dictionaries(required, optional={"external_id": IDS}),
        st.dictionaries(KEYS, JSON, max_size=5),
    )


OBJECTS = _object({})
EVENTS = _object({"name": st.sampled_from(["e", ""]) | TEXT, "time": TIMES})
PURCHASES = _object(
    {
        "product_id": st.sampled_from(["p1", ""]) | TEXT,
        "currency": st.sampled_from(["EUR", "XYZ"]) | JSON_SCALARS,
        "price": JSON_SCALARS,
        "time": TIMES,
    }
)
FRAGMENTS = st.fixed_dictionaries(
    {},
    optional={
        "attributes": st.lists(OBJECTS, max_size=3) | JSON,
        "events": st.lists(EVENTS, max_size=3),
        "purchases": st.lists(PURCHASES, max_size=3),
    },
)


# --- checks -----------------------------------------------------------------------------------


def _read(data: bytes, fmt: str) -> list[SourceRow | RowFailure]:
    options = ReadOptions(format=fmt)  # type: ignore[arg-type]
    with open_stream(f"fuzz.{fmt}", io.BytesIO(data), options) as source:
        return list(source.rows())


def _check_outcome(row: SourceRow, converter: Converter) -> None:
    out = converter.convert(row)
    assert type(out) in (Item, RowFailure, RowSkipped)
    event(f"{type(out).__name__} {getattr(out, 'error', '')}".strip())
    assert out.ref == row.ref
    if isinstance(out, Item):
        assert out.object_count > 0
        for array in ARRAYS:
            for obj in getattr(out, array):
                assert check_object(array, obj) is None
                orjson.dumps(obj)  # what the packer does with it
    elif isinstance(out, RowFailure):
        assert out.stage in ("convert", "validate") and out.error and out.message
        orjson.dumps(out.objects)  # what the journal writes


def _account(items: list[SourceRow | RowFailure], converters: tuple[Converter, ...]) -> None:
    lines = [item.ref.line for item in items]
    assert lines == sorted(set(lines))  # one outcome per record, in file order
    for item in items:
        if isinstance(item, RowFailure):
            assert item.stage == "read" and item.error and item.message
            event(f"read {item.error}")
            orjson.dumps(item.record)
        else:
            for converter in converters:
                _check_outcome(item, converter)


def _content_lines(data: bytes, first: int) -> list[int]:
    lines = data.removeprefix(b"\xef\xbb\xbf").splitlines()
    return [
        number
        for number, line in enumerate(lines, 1)
        if number >= first and line.decode("utf-8", "replace").strip()
    ]


# --- properties -------------------------------------------------------------------------------


@SETTINGS
@given(body=csv_rows() | st.binary(max_size=300))
def test_csv_bytes_through_reader_and_converter(body: bytes) -> None:
    data = HEADER + body
    items = _read(data, "csv")  # a good header: nothing after it may stop the run
    _account(items, (MAPPED,))
    if b'"' not in body:
        assert [item.ref.line for item in items] == _content_lines(data, 2)


@SETTINGS
@given(data=st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"external_id," + b))
def test_csv_with_any_header_never_crashes(data: bytes) -> None:
    try:
        items = _read(data, "csv")
        header = open_stream("h.csv", io.BytesIO(data), ReadOptions(format="csv")).header
        converter = Converter(default_mapping(header, "h.csv"))
    except ConfigError:  # InputError or MappingError
        return  # unusable header or no identifier column: exit 2, before sending
    _account(items, (converter,))


@SETTINGS
@given(data=st.binary(max_size=300) | csv_rows())
def test_jsonl_bytes_account_for_every_line(data: bytes) -> None:
    items = _read(data, "jsonl")
    _account(items, (MAPPED, UNMAPPED))
    if data.startswith(b"\x1f\x8b"):  # read as gzip, whatever the name
        assert isinstance(items[-1], RowFailure) and items[-1].error == "truncated_input"
        return
    body = data.removeprefix(b"\xef\xbb\xbf")
    expected = [number for number, line in enumerate(body.splitlines(), 1) if line.strip()]
    assert [item.ref.line for item in items] == expected


@SETTINGS
@given(records=st.lists(OBJECTS | FRAGMENTS | JSON, max_size=6))
def test_json_values_as_jsonl_lines(records: list[Any]) -> None:
    data = b"".join(orjson.dumps(record) + b"\n" for record in records)
    items = _read(data, "jsonl")
    assert len(items) == len(records)
    for item, record in zip(items, records, strict=True):
        if isinstance(item, SourceRow):
            assert item.record == record
        else:
            assert item.error == "not_an_object" and type(record) is not dict
    _account(items, (MAPPED, UNMAPPED))
