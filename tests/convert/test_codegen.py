"""importer.convert.codegen: the generated per-row code takes nothing from the mapping as code, and
gives what the mapping says for every template (literal, plain text, parsed, null values,
on_empty, required fields, properties, non-column readers)."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from importer.convert.converter import Converter
from importer.errors import RecordError
from importer.mapping import OMIT
from importer.mapping.document import MappingDoc
from importer.mapping.load import compile_mapping
from importer.models import CsvRecord, Item, RowFailure, RowRef, SourceRow

REF = RowRef("x.csv", 2)
HOSTILE = '"); import os; os._exit(9) #\n{x}\\'


def convert(text: str, record: dict[str, Any]) -> Item | RowFailure:
    converter = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    out = converter.convert(SourceRow(REF, record))
    assert not isinstance(out, tuple) or isinstance(out, Item), out
    return out  # type: ignore[return-value]


def test_keys_columns_and_values_that_look_like_code_are_only_data() -> None:
    quoted = HOSTILE.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = (
        f'[identity]\nexternal_id = "{quoted}"\n'
        f'[attributes]\n"{quoted}" = "{quoted}"\n"k2" = {{ value = "{quoted}" }}\n'
        f'[[events]]\nname = {{ value = "{quoted}" }}\ntime = "t"\n'
        f'[events.properties]\n"{quoted}" = "{quoted}"\n'
    )
    out = convert(text, {HOSTILE: "  v  ", "t": "2024-01-31T10:00:00+00:00"})
    assert isinstance(out, Item), out
    assert out.attributes == ({"external_id": "v", HOSTILE: "v", "k2": HOSTILE},)
    assert out.events == (
        {
            "external_id": "v",
            "name": HOSTILE,
            "time": "2024-01-31T10:00:00+00:00",
            "properties": {HOSTILE: "v"},
        },
    )


MAPPING = """
[input]
null_values = ["N/A"]
[identity]
external_id = "id"
[attributes]
plain = "a"
number = { column = "n", type = "integer" }
nulled = "z"
unset = { column = "u", empty = "null" }
fallback = { column = "f", type = "integer", default = 0 }
literal = { value = 7 }
[[purchases]]
product_id = "sku"
price = { column = "p", type = "float" }
currency = { value = "EUR" }
time = "t"
quantity = { column = "q", type = "integer" }
[purchases.properties]
note = "note"
"""


def attributes(plain: str) -> dict[str, Any]:
    """What MAPPING's attributes give when only ``plain`` varies (z is a null value, u and f
    are empty)."""
    return {
        "external_id": "u",
        "plain": plain,
        "number": 12,
        "unset": None,
        "fallback": 0,
        "literal": 7,
    }


def test_every_template_on_one_row() -> None:
    row = {"id": "u", "a": " x ", "n": "12", "z": "N/A", "u": "", "f": " ", "sku": "S"}
    row |= {"p": "1.5", "t": "2024-01-31T10:00:00+00:00", "q": "", "note": ""}
    out = convert(MAPPING, row)
    assert isinstance(out, Item), out
    assert out.attributes == (attributes("x"),)
    assert out.purchases == (
        {
            "external_id": "u",
            "product_id": "S",
            "price": 1.5,
            "currency": "EUR",
            "time": "2024-01-31T10:00:00+00:00",
        },
    )


def test_an_empty_required_column_drops_the_object_even_with_a_bad_value_beside_it() -> None:
    row = {"id": "u", "a": "x", "n": "1", "sku": "", "p": "not a number", "t": "2024-01-31"}
    out = convert(MAPPING, row)
    assert isinstance(out, Item), out
    assert out.purchases == ()


def test_a_bad_value_of_an_emitted_object_fails_the_row_naming_the_field() -> None:
    row = {"id": "u", "sku": "S", "p": "cheap", "t": "2024-01-31T10:00:00+00:00"}
    out = convert(MAPPING, row)
    assert isinstance(out, RowFailure), out
    assert out.error == "invalid_float"
    assert "price" in out.message and "'cheap'" in out.message


def test_typed_jsonl_values_take_the_field_reader() -> None:
    row = {"id": "u", "a": 5, "n": 12, "z": None, "f": None}
    out = convert(MAPPING, row)
    assert isinstance(out, Item), out
    assert out.attributes == (attributes("5"),)


CSV_ROWS = [
    {"id": " u ", "a": " x ", "n": "12", "z": "N/A", "u": "", "f": " ", "sku": "S", "p": "1.5"},
    {"id": "u", "a": "", "n": "x", "z": "", "u": "v", "f": "3", "sku": "", "p": "cheap"},
    {"id": "", "a": "a", "n": "1", "z": "z", "u": "", "f": "", "sku": "S", "p": "2"},
    {"id": "u", "a": "a", "n": "1", "z": "z", "u": "", "f": "", "sku": "S", "p": "bad"},
]
MAPPED = MAPPING.replace('plain = "a"', 'plain = { column = "a", map = { x = "ex" } }')


def test_csv_cells_and_record_dicts_give_the_same_outcome() -> None:
    """CSV rows are read by position (or, for a mapping with ``map``, as dicts): both shapes
    must agree with the dict path field for field, failures included."""
    for text in (MAPPING, MAPPED):
        converter = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
        for values in CSV_ROWS:
            full = {"t": "2024-01-31T10:00:00+00:00", "q": "", "note": "n", **values}
            header = tuple(full)
            from_dict = converter.convert(SourceRow(REF, full))
            from_cells = converter.convert(SourceRow(REF, CsvRecord(header, list(full.values()))))
            assert type(from_cells) is type(from_dict)
            if isinstance(from_dict, Item):
                assert from_cells[2:] == from_dict[2:]  # user and objects
            else:
                assert from_cells.error == from_dict.error  # type: ignore[union-attr]
                assert from_cells.message == from_dict.message  # type: ignore[union-attr]
            assert from_cells.record == full  # type: ignore[union-attr]


MAPS = """
[input]
null_values = ["N/A"]
[identity]
external_id = "id"
[attributes]
tier = { column = "m", map = { g = "gold", s = "silver", " p " = "platinum", "N/A" = "x" } }
points = { column = "m", type = "integer", map = { g = "10", s = "many", e = "" }, default = 0 }
vip = { column = "m", type = "boolean", map = { g = "yes", s = "no" }, empty = "null" }
score = { column = "m", type = "float", map = { g = 1.5, s = "" } }
"""
MAP_CELLS = ["g", "s", "e", " p ", "p", "N/A", "", "  g  ", "7", "true", "2.5", "other"]


@given(cell=st.one_of(st.sampled_from(MAP_CELLS), st.text(max_size=6)))
def test_a_map_read_by_position_gives_what_each_field_reader_gives(cell: str) -> None:
    """The generated code looks a mapped cell up in a table worked out once; the field's own
    reader (trim, nulls, map, convert) is the oracle, errors included."""
    mapping = compile_mapping(MappingDoc("m.toml", MAPS), tomllib.loads(MAPS))
    record = {"id": "u1", "m": cell}
    expected: dict[str, Any] = {"external_id": "u1"}
    error = None
    for field in mapping.attributes:
        try:
            value = field.read(record)
        except RecordError as exc:
            error = error or exc
            continue
        if value is not OMIT:
            expected[field.key] = value
    out = Converter(mapping).convert(SourceRow(REF, CsvRecord(("id", "m"), ["u1", cell])))
    if error is not None:
        assert isinstance(out, RowFailure)
        assert (out.error, out.message) == (error.code, error.message)
    elif len(expected) == 1:
        assert not isinstance(out, Item)
    else:
        assert isinstance(out, Item), out
        assert out.attributes == (expected,)
