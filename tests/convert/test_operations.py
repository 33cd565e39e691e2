"""Issue 12 in the converter: subscription groups from columns, attribute operations (inc, add,
remove, merge, ``attribute =``), epoch times — the same result from a CSV row's cells (the
generated fast path) and from a record dict (JSONL), and the record failures for bad cells."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from importer.config import ReadOptions
from importer.convert.converter import Converter
from importer.mapping.document import MappingDoc
from importer.mapping.load import compile_mapping
from importer.models import CsvRecord, Item, RowFailure, RowRef, RowSkipped, SourceRow
from importer.read import open_source

REF = RowRef("crm.csv", 7)
NEWS = "4b3c1e2a-1111-2222-3333-444455556666"
SMS = "9b3c1e2a-1111-2222-3333-444455556666"
MAPPING = f"""
[identity]
external_id = "Id"

[[subscription_groups]]
id = {{ value = "{NEWS}" }}
state = {{ column = "NewsOptIn", map = {{ Y = "subscribed", N = "unsubscribed" }} }}

[[subscription_groups]]
id = "SmsGroup"
state = {{ column = "SmsOptIn", map = {{ Y = "subscribed", N = "unsubscribed", U = "" }} }}
double_opt_in = true

[attributes]
points = {{ column = "Points", type = "integer", op = "inc" }}
tags = {{ column = "TagsAdded", type = "array", op = "add" }}
tags_gone = {{ column = "TagsRemoved", type = "array", op = "remove", attribute = "tags" }}
prefs = {{ column = "PrefsJson", type = "json", op = "merge" }}
last_login = {{ column = "LoginEpoch", type = "time", format = "epoch" }}
last_order = {{ column = "OrderMs", type = "time", format = "epoch_ms" }}
signup_day = {{ column = "SignupEpoch", type = "date", format = "epoch" }}
"""
COLUMNS = (
    *("Id", "NewsOptIn", "SmsGroup", "SmsOptIn", "Points", "TagsAdded", "TagsRemoved"),
    *("PrefsJson", "LoginEpoch", "OrderMs", "SignupEpoch"),
)


def convert(cells: dict[str, Any], text: str = MAPPING) -> list[Item | RowFailure | RowSkipped]:
    """The row converted twice: as a CSV row's cells and as a JSONL record; both must agree."""
    converter = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    record = {name: cells.get(name, "") for name in COLUMNS}
    row = [str(value) for value in record.values()]
    from_cells = converter.convert(SourceRow(REF, CsvRecord(COLUMNS, row)))
    assert converter._cells_code is not None  # the generated fast path, no per-row dict
    from_dict = converter.convert(SourceRow(REF, record))
    return [from_cells, from_dict]


def attributes(cells: dict[str, Any]) -> dict[str, Any]:
    (first, second) = convert({"Id": "u1", **cells})
    assert isinstance(first, Item) and isinstance(second, Item), (first, second)
    assert first.attributes == second.attributes
    (obj,) = first.attributes
    assert obj.pop("external_id") == "u1"
    return obj


def failure(cells: dict[str, Any]) -> RowFailure:
    results = convert({"Id": "u1", **cells})
    for out in results:
        assert isinstance(out, RowFailure), out
        assert out.ref == REF
    assert results[0].message == results[1].message
    return results[0]


# --- subscription groups -------------------------------------------------------------------------


def test_several_groups_per_row_with_maps_and_the_sms_double_opt_in() -> None:
    obj = attributes({"NewsOptIn": "Y", "SmsGroup": SMS, "SmsOptIn": "Y"})
    assert obj == {
        "subscription_groups": [
            {"subscription_group_id": NEWS, "subscription_state": "subscribed"},
            {
                "subscription_group_id": SMS,
                "subscription_state": "subscribed",
                "use_double_opt_in_logic": True,
            },
        ]
    }
    obj = attributes({"NewsOptIn": "N", "SmsGroup": SMS, "SmsOptIn": "N"})
    states = [(g["subscription_state"], len(g)) for g in obj["subscription_groups"]]
    assert states == [("unsubscribed", 2), ("unsubscribed", 2)]  # double opt-in: subscribing only


def test_an_empty_state_cell_or_a_state_mapped_to_nothing_sends_nothing_for_that_group() -> None:
    obj = attributes({"NewsOptIn": "", "SmsGroup": SMS, "SmsOptIn": "Y", "Points": "1"})
    assert [g["subscription_group_id"] for g in obj["subscription_groups"]] == [SMS]
    obj = attributes({"NewsOptIn": "Y", "SmsGroup": SMS, "SmsOptIn": "U"})
    assert [g["subscription_group_id"] for g in obj["subscription_groups"]] == [NEWS]
    assert convert({"Id": "u1", "SmsGroup": SMS})[0] == RowSkipped(REF, "no_data")


def test_an_unknown_state_fails_the_record_naming_the_group_and_the_value() -> None:
    out = failure({"NewsOptIn": "maybe"})
    assert out.stage == "convert" and out.error == "invalid_subscription_state"
    assert f"subscription_groups[0] (group '{NEWS}')" in out.message and "'maybe'" in out.message
    out = failure({"NewsOptIn": "Y", "SmsGroup": SMS, "SmsOptIn": "Subscribed"})
    assert f"subscription_groups[1] (group '{SMS}')" in out.message
    assert "'Subscribed'" in out.message


def test_a_state_without_its_group_id_fails_and_a_malformed_id_fails_validation() -> None:
    out = failure({"SmsOptIn": "Y"})
    assert out.error == "missing_subscription_group" and "SmsGroup" in out.message
    out = failure({"SmsGroup": "not-a-uuid", "SmsOptIn": "Y"})
    assert out.stage == "validate" and out.error == "invalid_subscription_group_id"


# --- operations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "sent"), [("5", {"inc": 5}), ("-3", {"inc": -3})])
def test_inc_sends_positive_and_negative_increments(cell: str, sent: dict[str, int]) -> None:
    assert attributes({"Points": cell}) == {"points": sent}


def test_inc_of_zero_sends_nothing_and_a_bad_number_fails_the_record() -> None:
    assert convert({"Id": "u1", "Points": "0"})[0] == RowSkipped(REF, "no_data")
    out = failure({"Points": "1.5"})
    assert out.error == "invalid_integer" and out.message.startswith("attributes.points:")


def test_add_and_remove_from_two_columns_land_in_one_value() -> None:
    obj = attributes({"TagsAdded": "vip|beta", "TagsRemoved": "trial"})
    assert obj == {"tags": {"add": ["vip", "beta"], "remove": ["trial"]}}
    assert attributes({"TagsRemoved": "trial"}) == {"tags": {"remove": ["trial"]}}
    assert attributes({"TagsAdded": "vip"}) == {"tags": {"add": ["vip"]}}


def test_an_over_long_tag_fails_validation_before_it_costs_a_request() -> None:
    out = failure({"TagsAdded": "x" * 256})
    assert out.stage == "validate" and out.error == "string_too_long"


def test_merge_sends_the_object_with_merge_objects() -> None:
    obj = attributes({"PrefsJson": '{"mail": {"weekly": true}}'})
    assert obj == {"prefs": {"mail": {"weekly": True}}, "_merge_objects": True}
    out = failure({"PrefsJson": "[1, 2]"})
    assert out.error == "invalid_merge" and "an array" in out.message


# --- epoch times ---------------------------------------------------------------------------------


def test_epoch_seconds_and_milliseconds_integer_or_decimal() -> None:
    obj = attributes(
        {"LoginEpoch": "1714564800", "OrderMs": "1714564800123", "SignupEpoch": "1714564800.9"}
    )
    assert obj == {
        "last_login": "2024-05-01T12:00:00+00:00",
        "last_order": "2024-05-01T12:00:00.123000+00:00",
        "signup_day": "2024-05-01",
    }
    assert attributes({"LoginEpoch": "1714564800.25"}) == {
        "last_login": "2024-05-01T12:00:00.250000+00:00"
    }
    assert attributes({"OrderMs": "-1000"}) == {"last_order": "1969-12-31T23:59:59+00:00"}


def test_jsonl_numbers_are_read_as_epochs() -> None:
    converter = Converter(compile_mapping(MappingDoc("m.toml", MAPPING), tomllib.loads(MAPPING)))
    record = {"Id": "u1", "LoginEpoch": 1714564800.5, "OrderMs": 1714564800123}
    out = converter.convert(SourceRow(REF, record))
    assert isinstance(out, Item)
    assert out.attributes[0]["last_login"] == "2024-05-01T12:00:00.500000+00:00"
    assert out.attributes[0]["last_order"] == "2024-05-01T12:00:00.123000+00:00"


@pytest.mark.parametrize("cell", ["yesterday", "1e9", "99999999999999999"])
def test_a_cell_that_is_no_unix_time_fails_the_record(cell: str) -> None:
    out = failure({"LoginEpoch": cell})
    assert out.error == "invalid_time" and "Unix time in seconds" in out.message


def test_a_jsonl_boolean_state_is_mapped_by_its_text() -> None:
    text = (
        f'[identity]\nexternal_id = "Id"\n[[subscription_groups]]\nid = {{ value = "{NEWS}" }}\n'
        'state = { column = "OptIn", map = { "true" = "subscribed", "false" = "unsubscribed" } }\n'
    )
    converter = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    for flag, state in ((True, "subscribed"), (False, "unsubscribed")):
        out = converter.convert(SourceRow(REF, {"Id": "u1", "OptIn": flag}))
        assert isinstance(out, Item)
        assert out.attributes[0]["subscription_groups"][0]["subscription_state"] == state


def test_the_readme_example_converts_to_the_object_it_shows(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Consent and operations") :]
    toml, csv_text, wire = (
        re.search(rf"```{kind}\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
        for kind in ("toml", "csv", "json")
    )
    (tmp_path / "rows.csv").write_text(csv_text, encoding="utf-8")
    converter = Converter(compile_mapping(MappingDoc("m.toml", toml), tomllib.loads(toml)))
    with open_source(str(tmp_path / "rows.csv"), ReadOptions()) as source:
        (row,) = source.rows()
    out = converter.convert(row)  # type: ignore[arg-type]
    assert isinstance(out, Item) and out.attributes == (json.loads(wire),)
