"""SourceRow -> Item | RowFailure | RowSkipped: every type and option, emission, identity, JSONL,
the default mapping, validation, the fixtures, and hypothesis over arbitrary rows."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.convert.converter import Converter
from importer.mapping.document import MappingDoc
from importer.mapping.load import compile_mapping, default_mapping, load_mapping
from importer.models import CsvRecord, Item, RowFailure, RowRef, RowSkipped, SourceRow
from importer.send import wire_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REF = RowRef("crm.csv", 7)


def converter(text: str) -> Converter:
    return Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))


def run(text: str, record: dict[str, Any]) -> Item | RowFailure | RowSkipped:
    return converter(text).convert(SourceRow(REF, record))


def item(text: str, record: dict[str, Any]) -> Item:
    out = run(text, record)
    assert isinstance(out, Item), out
    assert out.ref == REF and out.record is record
    return out


def attrs(fields: str, record: dict[str, Any], inputs: str = "") -> dict[str, Any]:
    """The attributes a one-table mapping gives for ``record``, without the identifier."""
    text = f'{inputs}[identity]\nexternal_id = "Id"\n[attributes]\n{fields}'
    out = run(text, {"Id": "u1", **record})
    if isinstance(out, RowSkipped):
        return {}
    assert isinstance(out, Item), out
    (obj,) = out.attributes
    assert obj.pop("external_id") == "u1"
    return obj


def failure(fields: str, record: dict[str, Any]) -> RowFailure:
    text = f'[identity]\nexternal_id = "Id"\n[attributes]\n{fields}'
    row = {"Id": "u1", **record}
    out = run(text, row)
    assert isinstance(out, RowFailure), out
    assert out.ref == REF and out.record is row and out.objects is None
    return out


# --- types -------------------------------------------------------------------------------------


def test_string_is_trimmed_and_typed_jsonl_values_become_text() -> None:
    fields = 'a = "A"\nb = "B"\nc = "C"\nd = "D"\n'
    record = {"A": "  Anna \t", "B": 42, "C": True, "D": 1.5}
    assert attrs(fields, record) == {"a": "Anna", "b": "42", "c": "true", "d": "1.5"}
    assert failure('a = "A"\n', {"A": {"x": 1}}).error == "invalid_string"


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("007", 7),
        (12, 12),
        (12.0, 12),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_integer_accepts(cell: Any, value: int) -> None:
    assert attrs('n = { column = "N", type = "integer" }\n', {"N": cell}) == {"n": value}


@pytest.mark.parametrize(
    "cell", ["12a", "1.5", "1_000", "١٢", "9223372036854775808", 1.5, True, "0x10", [1]]
)
def test_integer_refuses(cell: Any) -> None:
    out = failure('n = { column = "N", type = "integer" }\n', {"N": cell})
    assert out.stage == "convert" and out.error == "invalid_integer"
    assert out.message.startswith(f"attributes.n: {cell!r}"[:30])


def test_float_accepts_numbers_and_refuses_commas_and_non_finite() -> None:
    fields = 'f = { column = "F", type = "float" }\n'
    assert attrs(fields, {"F": "19.90"}) == {"f": 19.9}
    assert attrs(fields, {"F": "1e3"}) == {"f": 1000.0}
    assert attrs(fields, {"F": 3}) == {"f": 3.0}
    out = failure(fields, {"F": "12,50"})
    assert (out.error, out.message) == ("invalid_float", "attributes.f: '12,50' is not a number")
    for cell in ("nan", "inf", "-Infinity", "1e999", True):
        assert failure(fields, {"F": cell}).error == "invalid_float"


def test_boolean_defaults_any_case_and_custom_lists_replace_them() -> None:
    fields = 'b = { column = "B", type = "boolean" }\n'
    for cell, value in [("TRUE", True), ("Yes", True), ("y", True), ("T", True), ("1", True)]:
        assert attrs(fields, {"B": cell}) == {"b": value}
    falsy: list[Any] = ["false", "NO", "n", "f", "0", 0, False]
    for falsy_cell in falsy:
        assert attrs(fields, {"B": falsy_cell}) == {"b": False}
    out = failure(fields, {"B": "maybe"})
    assert out.error == "invalid_boolean" and "'maybe' is not a boolean" in out.message
    custom = 'b = { column = "B", type = "boolean", true = ["J", "ja"], false = ["N"] }\n'
    assert attrs(custom, {"B": "JA"}) == {"b": True}
    assert attrs(custom, {"B": "n"}) == {"b": False}
    assert failure(custom, {"B": "yes"}).error == "invalid_boolean"  # the defaults are gone


def test_time_iso_input_passes_through_or_gets_an_offset() -> None:
    fields = 't = { column = "T", type = "time" }\n'
    for cell, value in [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00+02:00"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01 12:00:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00:00.250-05:00", "2024-05-01T12:00:00.250000-05:00"),
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
        (1714564800, "2024-05-01T12:00:00+00:00"),
    ]:
        assert attrs(fields, {"T": cell}) == {"t": value}
    out = failure(fields, {"T": "01/05/2024"})
    assert out.error == "invalid_time" and "'01/05/2024' is not a valid time" in out.message
    assert failure(fields, {"T": "2024-02-30T10:00:00"}).message.endswith(
        "day is out of range for month"
    )


def test_time_with_format_and_timezone() -> None:
    fields = (
        't = { column = "T", type = "time", format = "%d.%m.%Y %H:%M", '
        'timezone = "Europe/Berlin" }\n'
    )
    assert attrs(fields, {"T": "15.01.2024 09:30"}) == {"t": "2024-01-15T09:30:00+01:00"}
    assert attrs(fields, {"T": "1.7.2024 9:05"}) == {"t": "2024-07-01T09:05:00+02:00"}
    out = failure(fields, {"T": "2024-01-15 09:30"})
    assert out.error == "invalid_time" and "does not match format '%d.%m.%Y %H:%M'" in out.message
    naive = 'u = { column = "U", type = "time", timezone = "America/New_York" }\n'
    assert attrs(naive, {"U": "2024-07-04T18:00:00"}) == {"u": "2024-07-04T18:00:00-04:00"}
    assert attrs(naive, {"U": "2024-07-04T18:00:00+01:00"}) == {"u": "2024-07-04T18:00:00+01:00"}


def test_dst_gap_fails_the_record_and_overlap_takes_the_first_occurrence() -> None:
    fields = 't = { column = "T", type = "time", timezone = "Europe/Berlin" }\n'
    out = failure(fields, {"T": "2024-03-31 02:30:00"})
    assert out.error == "nonexistent_time"
    assert "'2024-03-31 02:30:00' does not exist in Europe/Berlin" in out.message
    assert attrs(fields, {"T": "2024-03-31 01:59:59"}) == {"t": "2024-03-31T01:59:59+01:00"}
    assert attrs(fields, {"T": "2024-03-31 03:00:00"}) == {"t": "2024-03-31T03:00:00+02:00"}
    assert attrs(fields, {"T": "2024-10-27 02:30:00"}) == {"t": "2024-10-27T02:30:00+02:00"}
    assert attrs(fields, {"T": "2024-10-27 03:00:00"}) == {"t": "2024-10-27T03:00:00+01:00"}


def test_date_reads_iso_dates_the_date_part_of_timestamps_or_a_format() -> None:
    plain = 'd = { column = "D", type = "date" }\n'
    assert attrs(plain, {"D": "1985-03-14"}) == {"d": "1985-03-14"}
    assert attrs(plain, {"D": "1985-03-14T23:30:00-05:00"}) == {"d": "1985-03-14"}
    assert failure(plain, {"D": "14.03.1985"}).error == "invalid_date"
    formatted = 'd = { column = "D", type = "date", format = "%d.%m.%Y" }\n'
    assert attrs(formatted, {"D": "14.03.1985"}) == {"d": "1985-03-14"}
    out = failure(formatted, {"D": "31.02.1985"})
    assert out.error == "invalid_date"
    assert out.message == (
        "attributes.d: '31.02.1985' is not a valid date: day is out of range for month"
    )
    assert failure(formatted, {"D": 19850314}).error == "invalid_date"


def test_array_splits_trims_and_drops_empty_items() -> None:
    fields = (
        'a = { column = "A", type = "array" }\n'
        'b = { column = "B", type = "array", separator = ";" }\n'
    )
    assert attrs(fields, {"A": " rock | | jazz|", "B": "x; y"}) == {
        "a": ["rock", "jazz"],
        "b": ["x", "y"],
    }
    assert attrs(fields, {"A": ["p ", "", None, 3], "B": "solo"}) == {"a": ["p", 3], "b": ["solo"]}
    assert failure(fields, {"A": {"k": 1}}).error == "invalid_array"


def test_array_of_only_separators_counts_as_empty() -> None:
    omit = 'a = { column = "A", type = "array" }\nx = "X"\n'
    assert attrs(omit, {"A": " | |", "X": "1"}) == {"x": "1"}
    null = 'a = { column = "A", type = "array", empty = "null" }\n'
    assert attrs(null, {"A": "||"}) == {"a": None}
    default = 'a = { column = "A", type = "array", default = "none" }\n'
    assert attrs(default, {"A": "|"}) == {"a": ["none"]}


def test_json_parses_text_and_passes_parsed_values() -> None:
    fields = 'j = { column = "J", type = "json" }\n'
    assert attrs(fields, {"J": '{"a": [1, 2]}'}) == {"j": {"a": [1, 2]}}
    assert attrs(fields, {"J": {"already": True}}) == {"j": {"already": True}}
    out = failure(fields, {"J": "{not json"})
    assert out.error == "invalid_json" and "'{not json' is not valid JSON" in out.message
    # orjson would read it as the float 1e+20; the JSONL reader refuses such lines too.
    assert attrs(fields, {"J": "[9223372036854775807]"}) == {"j": [9223372036854775807]}
    out = failure(fields, {"J": '{"n": 99999999999999999999}'})
    assert out.error == "bad_number" and "outside signed 64 bits" in out.message


# --- options -----------------------------------------------------------------------------------


def test_map_rewrites_before_conversion_and_unmapped_values_pass() -> None:
    fields = (
        'g = { column = "G", map = { Male = "M", Female = "F", Unknown = "" } }\n'
        'v = { column = "V", type = "boolean", map = { J = "yes", Nein = false } }\n'
    )
    assert attrs(fields, {"G": "Male", "V": "J"}) == {"g": "M", "v": True}
    assert attrs(fields, {"G": "X", "V": "Nein"}) == {"g": "X", "v": False}
    assert attrs(fields, {"G": "Unknown", "V": ""}) == {}  # mapped to "": empty


def test_empty_cells_are_omitted_by_default_or_sent_as_null() -> None:
    fields = 'a = "A"\nb = { column = "B", empty = "null" }\nc = { column = "C", empty = "omit" }\n'
    assert attrs(fields, {"A": " ", "B": "", "C": ""}) == {"b": None}
    assert attrs(fields, {"B": "x"}) == {"b": "x"}  # a missing key is empty too


def test_default_applies_before_empty() -> None:
    fields = (
        'p = { column = "P", type = "integer", default = 0, empty = "null" }\n'
        'q = { column = "Q", default = "basic" }\n'
    )
    assert attrs(fields, {"P": "", "Q": ""}) == {"p": 0, "q": "basic"}
    assert attrs(fields, {"P": "5", "Q": "gold"}) == {"p": 5, "q": "gold"}


def test_null_values_count_as_empty() -> None:
    inputs = '[input]\nnull_values = ["NULL", "\\\\N"]\n'
    fields = 'a = "A"\nb = { column = "B", empty = "null" }\nc = { column = "C", default = "d" }\n'
    record = {"A": "NULL", "B": " \\N ", "C": "NULL"}
    assert attrs(fields, record, inputs) == {"b": None, "c": "d"}
    exact = attrs(fields, {"A": "null", "B": "x", "C": "y"}, inputs)  # exact matches only
    assert exact == {"a": "null", "b": "x", "c": "y"}


def test_literal_values() -> None:
    fields = 's = { value = "legacy_crm" }\nn = { value = "5", type = "integer" }\n'
    assert attrs(fields, {}) == {"s": "legacy_crm", "n": 5}


def test_every_option_works_inside_properties() -> None:
    text = (
        '[identity]\nexternal_id = "Id"\n'
        '[[events]]\nname = { value = "e" }\ntime = { column = "T", timezone = "Europe/Berlin" }\n'
        "[events.properties]\n"
        'n = { column = "N", type = "integer", default = 1 }\n'
        'g = { column = "G", map = { a = "A" } }\n'
        'z = { column = "Z", empty = "null" }\n'
        'b = { column = "B", type = "boolean", true = ["J"], false = ["N"] }\n'
        'l = { column = "L", type = "array", separator = "," }\n'
        'd = { column = "D", type = "date", format = "%d.%m.%Y" }\n'
        'w = { column = "W", type = "time", format = "%Y%m%d%H%M", timezone = "Asia/Tokyo" }\n'
        'j = { column = "J", type = "json" }\n'
        'f = { column = "F", type = "float" }\n'
        'c = { value = "const" }\n'
    )
    record = {
        **{"Id": "1", "T": "2024-01-02 03:04:05", "N": "", "G": "a", "Z": "", "B": "j"},
        **{"L": "x, y", "D": "02.01.2024", "W": "202401020304", "J": "[1]", "F": "2.5"},
    }
    (event,) = item(text, record).events
    assert event == {
        "external_id": "1",
        "name": "e",
        "time": "2024-01-02T03:04:05+01:00",
        "properties": {
            **{"n": 1, "g": "A", "z": None, "b": True, "l": ["x", "y"], "d": "2024-01-02"},
            **{"w": "2024-01-02T03:04:00+09:00", "j": [1], "f": 2.5, "c": "const"},
        },
    }
    out = run(text, {**record, "N": "x"})
    assert isinstance(out, RowFailure) and out.error == "invalid_integer"
    assert out.message == "events[0].properties.n: 'x' is not an integer"


# --- identity, emission, skip ------------------------------------------------------------------

EVENT_AND_PURCHASE = (
    '[identity]\nexternal_id = "Id"\nupdate_existing_only = true\n'
    '[attributes]\nplan = "Plan"\n'
    '[[events]]\nname = "Event"\ntime = "When"\n[events.properties]\np = "Plan"\n'
    '[[purchases]]\nproduct_id = "Sku"\ncurrency = "Cur"\nprice = "Price"\ntime = "When"\n'
    'quantity = "Qty"\n'
)
FULL_ROW = {
    **{"Id": "42", "Plan": "gold", "Event": "signup", "When": "2024-05-01T10:00:00+02:00"},
    **{"Sku": "SKU-1", "Cur": "EUR", "Price": "9.5", "Qty": ""},
}


def test_every_object_carries_the_identifier_and_update_flag() -> None:
    out = item(EVENT_AND_PURCHASE, FULL_ROW)
    base = {"external_id": "42", "_update_existing_only": True}
    assert out.user == "external_id:42"
    assert out.attributes == ({**base, "plan": "gold"},)
    assert out.events == (
        {
            **base,
            "name": "signup",
            "time": "2024-05-01T10:00:00+02:00",
            "properties": {"p": "gold"},
        },
    )
    assert out.purchases == (
        {
            **base,
            "product_id": "SKU-1",
            "currency": "EUR",
            "price": 9.5,
            "time": out.events[0]["time"],
        },
    )  # price is a float by default; an empty quantity is left out


def test_a_csv_row_is_converted_in_one_generated_call() -> None:
    """A CSV row's Item comes from the row function (builder.row_function), whole: it is the
    Item the converter returns, and a row it leaves (no identifier) gets None from it."""
    conv = converter(EVENT_AND_PURCHASE)
    header = tuple(FULL_ROW)
    record = CsvRecord(header, list(FULL_ROW.values()))
    out = conv.convert(SourceRow(REF, record))
    assert conv._row is not None
    assert conv._row(REF, record, record.cells) == out == item(EVENT_AND_PURCHASE, FULL_ROW)
    empty = CsvRecord(header, ["", *list(FULL_ROW.values())[1:]])
    assert conv._row(REF, empty, empty.cells) is None
    assert isinstance(conv.convert(SourceRow(REF, empty)), RowFailure)
    # Several events and purchases, in mapping order, an empty required column dropping one.
    text = EVENT_AND_PURCHASE + (
        '[[events]]\nname = "Plan"\ntime = "When"\n'
        '[[purchases]]\nproduct_id = "Plan"\ncurrency = "Cur"\nprice = "Price"\ntime = "When"\n'
        '[[events]]\nname = "Gone"\ntime = "When"\n'
    )
    conv = converter(text)
    row = {**FULL_ROW, "Gone": ""}
    record = CsvRecord(tuple(row), list(row.values()))
    out = conv.convert(SourceRow(REF, record))
    assert conv._row is not None and conv._row(REF, record, record.cells) == out
    assert out == item(text, row)
    assert [e["name"] for e in out.events] == ["signup", "gold"]
    assert [p["product_id"] for p in out.purchases] == ["SKU-1", "gold"]


def test_to_wire_makes_a_csv_row_s_item_carry_its_objects_as_json_only() -> None:
    """After ``to_wire`` (a run without --state), a CSV row's Item carries only the JSON the
    packer would make of its objects (their dicts are not kept); a row the row function leaves
    fails as before. The row function of a header already seen is made again."""
    conv = converter(EVENT_AND_PURCHASE)
    header = tuple(FULL_ROW)
    record = CsvRecord(header, list(FULL_ROW.values()))
    before = conv.convert(SourceRow(REF, record))
    assert isinstance(before, Item) and before.wire is None
    conv.to_wire()
    out = conv.convert(SourceRow(REF, record))
    assert isinstance(out, Item) and (out.attributes, out.events, out.purchases) == ((), (), ())
    assert out.wire == wire_of(before) and out.decoded() == before._replace(wire=out.wire)
    assert out._replace(wire=None) == before._replace(attributes=(), events=(), purchases=())
    empty = CsvRecord(header, ["", *list(FULL_ROW.values())[1:]])
    failed = conv.convert(SourceRow(REF, empty))
    assert isinstance(failed, RowFailure) and failed.error == "missing_identifier"


@pytest.mark.parametrize("column", ["Event", "When"])
def test_event_is_not_emitted_when_name_or_time_is_empty(column: str) -> None:
    out = item(EVENT_AND_PURCHASE, {**FULL_ROW, column: " "})
    assert out.events == ()
    assert out.purchases == () if column == "When" else len(out.purchases) == 1


@pytest.mark.parametrize("column", ["Sku", "Cur", "Price", "When"])
def test_purchase_is_not_emitted_when_a_required_column_is_empty(column: str) -> None:
    assert item(EVENT_AND_PURCHASE, {**FULL_ROW, column: ""}).purchases == ()


def test_bad_values_of_an_object_that_is_not_emitted_do_not_fail_the_row() -> None:
    row = {**FULL_ROW, "Sku": "", "Price": "not a number", "Qty": "zero"}
    assert item(EVENT_AND_PURCHASE, row).purchases == ()
    out = run(EVENT_AND_PURCHASE, {**row, "Sku": "SKU-1"})
    assert isinstance(out, RowFailure) and out.error == "invalid_float"
    assert out.message == "purchases[0].price: 'not a number' is not a number"


def test_empty_properties_are_omitted() -> None:
    (event,) = item(EVENT_AND_PURCHASE, {**FULL_ROW, "Plan": ""}).events
    assert "properties" not in event


def test_row_with_identifier_and_nothing_to_send_is_skipped() -> None:
    row = {"Id": "42", "Plan": "", "Event": "", "When": "", "Sku": "", "Cur": "", "Price": ""}
    out = run(EVENT_AND_PURCHASE, row)
    assert out == RowSkipped(REF, "no_data")


def test_row_without_identifier_fails() -> None:
    out = run(EVENT_AND_PURCHASE, {**FULL_ROW, "Id": "  "})
    assert isinstance(out, RowFailure)
    assert (out.stage, out.error) == ("convert", "missing_identifier")
    assert out.message == "identity.external_id: the identifier (column 'Id') is empty"


def test_user_alias_identity() -> None:
    text = (
        '[identity]\nuser_alias = { name = "Legacy", label = "legacy_crm" }\n'
        '[attributes]\nfirst_name = "First"\n'
    )
    out = item(text, {"Legacy": "L-7", "First": "Ann"})
    alias = {"alias_name": "L-7", "alias_label": "legacy_crm"}
    assert out.attributes == ({"user_alias": alias, "first_name": "Ann"},)
    assert out.user == "user_alias:legacy_crm:L-7"


def test_identity_map_and_jsonl_number_identifier() -> None:
    text = '[identity]\nemail = { column = "Mail", map = { "n/a" = "" } }\n[attributes]\nx = "X"\n'
    assert item(text, {"Mail": " a@example.com ", "X": "1"}).user == "email:a@example.com"
    out = run(text, {"Mail": "n/a", "X": "1"})
    assert isinstance(out, RowFailure) and out.error == "missing_identifier"
    number = '[identity]\nexternal_id = "id"\n[attributes]\nx = "X"\n'
    assert item(number, {"id": 42, "X": "1"}).attributes[0]["external_id"] == "42"


def test_jsonl_nested_paths_and_typed_values() -> None:
    text = (
        '[identity]\nexternal_id = "customer.id"\n'
        '[attributes]\nfirst_name = "name.first"\n'
        'points = { column = "stats.points", type = "integer" }\n'
        'vip = { column = "stats.vip", type = "boolean" }\n'
        'tags = { column = "tags", type = "array" }\n'
        'city = { column = "address.city", empty = "null" }\n'
    )
    record = {
        "customer": {"id": 7},
        "name": {"first": " Ann "},
        "stats": {"points": 12, "vip": True},
        "tags": ["a", " b"],
        "address": "not an object",
    }
    (obj,) = item(text, record).attributes
    assert obj == {
        **{"external_id": "7", "first_name": "Ann", "points": 12, "vip": True},
        **{"tags": ["a", "b"], "city": None},
    }
    assert item(text, {**record, "stats": {"points": "12"}}).attributes[0]["points"] == 12


def test_a_dotted_csv_column_is_read_as_it_is() -> None:
    text = '[identity]\nexternal_id = "Id"\n[attributes]\nx = "a.b"\n'
    assert item(text, {"Id": "1", "a.b": "v"}).attributes[0]["x"] == "v"


# --- validation --------------------------------------------------------------------------------


def test_a_broken_braze_rule_fails_the_record_at_stage_validate_with_its_objects() -> None:
    row = {**FULL_ROW, "Cur": "XYZ"}
    out = run(EVENT_AND_PURCHASE, row)
    assert isinstance(out, RowFailure)
    assert (out.stage, out.error) == ("validate", "invalid_currency")
    assert out.message.startswith("purchase: currency") and "'XYZ'" in out.message
    assert out.record is row
    assert out.objects is not None and set(out.objects) == {"attributes", "events", "purchases"}
    assert out.objects["purchases"][0]["currency"] == "XYZ"


def test_validation_catches_long_strings_and_bad_quantities() -> None:
    out = run(EVENT_AND_PURCHASE, {**FULL_ROW, "Plan": "x" * 256})
    assert isinstance(out, RowFailure) and (out.stage, out.error) == ("validate", "string_too_long")
    out = run(EVENT_AND_PURCHASE, {**FULL_ROW, "Qty": "0"})
    assert isinstance(out, RowFailure) and out.error == "invalid_quantity"


# --- without a mapping -------------------------------------------------------------------------


def test_default_csv_mapping_sends_other_columns_as_strings() -> None:
    conv = Converter(default_mapping(["email", "external_id", "points"], "x.csv"))
    out = conv.convert(SourceRow(REF, {"email": "a@example.com", "external_id": "9", "points": ""}))
    assert isinstance(out, Item) and out.user == "external_id:9"
    assert out.attributes == ({"external_id": "9", "email": "a@example.com"},)
    skipped = conv.convert(SourceRow(REF, {"email": "", "external_id": "9", "points": ""}))
    assert skipped == RowSkipped(REF, "no_data")
    failed = conv.convert(
        SourceRow(REF, {"email": "a@example.com", "external_id": "", "points": "1"})
    )
    assert isinstance(failed, RowFailure) and failed.error == "missing_identifier"


def unmapped(record: dict[str, Any]) -> Item | RowFailure | RowSkipped:
    return Converter(default_mapping(None, "x.jsonl")).convert(SourceRow(REF, record))


def test_default_jsonl_fragment_is_sent_as_it_is() -> None:
    event = {"external_id": "u1", "name": "e", "time": "2024-01-01T00:00:00+00:00"}
    record = {"events": [event], "attributes": []}
    out = unmapped(record)
    assert isinstance(out, Item)
    assert out.events == (event,) and out.attributes == () and out.user == "external_id:u1"
    assert unmapped({"attributes": [], "events": []}) == RowSkipped(REF, "no_data")
    bad = unmapped({"attributes": {"external_id": "u1"}})
    assert isinstance(bad, RowFailure) and bad.error == "invalid_fragment"
    invalid = unmapped({"events": [{"external_id": "u1", "name": "e"}]})
    assert isinstance(invalid, RowFailure) and (invalid.stage, invalid.error) == (
        "validate",
        "missing_time",
    )
    assert invalid.objects == {"events": [{"external_id": "u1", "name": "e"}]}


def test_default_jsonl_flat_object_becomes_one_attributes_object() -> None:
    out = unmapped({"email": "a@example.com", "external_id": 12, "tags": ["x"], "gone": None})
    assert isinstance(out, Item) and out.user == "external_id:12"
    assert out.attributes == (
        {"email": "a@example.com", "external_id": "12", "tags": ["x"], "gone": None},
    )
    alias = {"alias_name": "n", "alias_label": "l"}
    aliased = unmapped({"user_alias": alias, "x": 1})
    assert isinstance(aliased, Item) and aliased.user == "user_alias:l:n"
    assert unmapped({"external_id": "1"}) == RowSkipped(REF, "no_data")
    missing = unmapped({"name": "Ann"})
    assert isinstance(missing, RowFailure) and missing.error == "missing_identifier"


# --- the fixtures ------------------------------------------------------------------------------


def csv_rows(name: str) -> list[SourceRow]:
    with (FIXTURES / name).open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return [
            SourceRow(RowRef(name, n), dict(zip(header, row, strict=True)))
            for n, row in enumerate(reader, 2)
        ]


def test_crm_fixture_converts_every_row_and_jsonl_gives_the_same_objects() -> None:
    csv_out = [
        Converter(load_mapping(FIXTURES / "crm.toml")).convert(row) for row in csv_rows("crm.csv")
    ]
    assert len(csv_out) == 40 and all(isinstance(out, Item) for out in csv_out)
    jsonl = Converter(load_mapping(FIXTURES / "crm-jsonl.toml"))
    lines = (FIXTURES / "crm.jsonl").read_text(encoding="utf-8").splitlines()
    jsonl_out = [
        jsonl.convert(SourceRow(RowRef("crm.jsonl", n), json.loads(line)))
        for n, line in enumerate(lines, 1)
    ]
    assert [out.objects() for out in jsonl_out if isinstance(out, Item)] == [
        out.objects() for out in csv_out if isinstance(out, Item)
    ]
    counts = [(len(out.events), len(out.purchases)) for out in csv_out if isinstance(out, Item)]
    assert (0, 1) in counts and (1, 0) in counts and (1, 1) in counts


def test_bad_rows_fixture_fails_each_bad_row_with_its_code() -> None:
    conv = Converter(load_mapping(FIXTURES / "crm.toml"))
    outcomes = {row.ref.line: conv.convert(row) for row in csv_rows("bad-rows.csv")}
    codes = {
        line: (out.stage, out.error) if isinstance(out, RowFailure) else "ok"
        for line, out in outcomes.items()
    }
    assert codes == {
        2: "ok",
        3: ("convert", "invalid_integer"),
        4: ("convert", "invalid_date"),
        5: "ok",
        6: ("validate", "invalid_currency"),
        7: ("validate", "invalid_quantity"),
        8: ("validate", "string_too_long"),
        9: ("convert", "missing_identifier"),
        10: "ok",
        11: ("convert", "nonexistent_time"),
        12: ("convert", "invalid_boolean"),
        13: ("convert", "invalid_date"),
        14: ("convert", "invalid_time"),
        15: ("convert", "invalid_float"),
        16: "ok",
    }


# --- hypothesis --------------------------------------------------------------------------------

EVERY_TYPE = (
    '[input]\nnull_values = ["NULL"]\n'
    '[identity]\nexternal_id = "id"\n'
    "[attributes]\n"
    's = "s"\ni = { column = "i", type = "integer" }\nf = { column = "f", type = "float" }\n'
    'b = { column = "b", type = "boolean" }\nt = { column = "t", type = "time", '
    'timezone = "Europe/Berlin" }\n'
    'tf = { column = "t", type = "time", format = "%d.%m.%Y %H:%M" }\n'
    'd = { column = "d", type = "date" }\n'
    'df = { column = "d", type = "date", format = "%d.%m.%Y" }\n'
    'a = { column = "a", type = "array" }\nj = { column = "j", type = "json" }\n'
    'm = { column = "s", map = { x = "y" }, default = "z", empty = "null" }\n'
    'n = { column = "n.x" }\n'
    '[[events]]\nname = "s"\ntime = "t"\n'
    '[events.properties]\np = { column = "i", type = "integer" }\n'
    '[[purchases]]\nproduct_id = "s"\ncurrency = "s"\nprice = "f"\ntime = "t"\nquantity = "i"\n'
)
COLUMNS = ["id", "s", "i", "f", "b", "t", "d", "a", "j", "n.x", "n"]
CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "NULL", "1", "0", "yes", "|", "2024-03-31 02:30", "31.02.2024"]),
    st.sampled_from(["12", "3.5", "a|b", '{"k": 1}', "01.02.2024 10:00", "2024-05-01"]),
    st.from_regex(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)?", fullmatch=True),
)
IDS = st.text(alphabet="abcXYZ0189 -", min_size=1, max_size=8)  # now and then blank
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def assert_one_outcome(conv: Converter, record: dict[str, Any]) -> None:
    out = conv.convert(SourceRow(REF, record))
    assert isinstance(out, Item | RowFailure | RowSkipped)
    assert out.ref == REF
    if isinstance(out, RowFailure):
        assert out.error and out.message and out.record is record


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), CELLS), IDS)
def test_any_csv_row_gives_exactly_one_outcome(record: dict[str, str], ident: str) -> None:
    assert_one_outcome(converter(EVERY_TYPE), {**record, "id": ident})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), JSON | CELLS), IDS | JSON)
def test_any_jsonl_object_gives_exactly_one_outcome(record: dict[str, Any], ident: Any) -> None:
    assert_one_outcome(converter(EVERY_TYPE), {**record, "id": ident})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["attributes", "events", "purchases", "external_id", "x"]), JSON
    )
)
def test_any_object_without_a_mapping_gives_exactly_one_outcome(record: dict[str, Any]) -> None:
    assert_one_outcome(Converter(default_mapping(None, "x.jsonl")), record)
