from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from importer.config import ReadOptions
from importer.convert import Converter
from importer.mapping import OMIT, draft_file, mapping_from_text
from importer.mapping.column_types import guess_type
from importer.mapping.draft import draft_mapping
from importer.models import CsvRecord, Item, RowRef, SourceRow
from importer.read.source import open_source


def draft(path: Path, data: bytes, sample_rows: int = 1000, **options: Any) -> str:
    path.write_bytes(data)
    with open_source(str(path), ReadOptions(**options)) as source:
        return draft_mapping(source, sample_rows)


def crm_csv(rows: int = 40) -> bytes:
    lines = [
        "CustomerNo;First Name;LastName;E-Mail;Zip;Phone;Birthday;Sex;Points;VIP;"
        "Created;Balance;SignupDay;Notes;Prefs"
    ]
    for i in range(rows):
        lines.append(
            f"{1000 + i};Anna{i};Müller;anna{i}@example.com;{i % 3:05d};+49151{i:07d};"
            f"{1 + i % 28:02d}.0{1 + i % 9}.19{50 + i}; {'Female' if i % 2 else 'Male'} ;{i * 7};"
            f"{'yes' if i % 3 else 'no'};2021-03-04T10:{i:02d}:00+01:00;{i}.5;"
            f"2020-01-{1 + i % 28:02d};"
            f"{'NULL' if i % 4 else 'likes cats'};{quoted_json({'news': bool(i % 2)})}"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def quoted_json(value: Any) -> str:
    return '"' + json.dumps(value).replace('"', '""') + '"'


def test_crm_csv_draft_settles_types_and_identity(tmp_path: Path) -> None:
    text = draft(tmp_path / "crm.csv", crm_csv(), encoding="cp1252")
    mapping = tomllib.loads(text)
    assert mapping["input"] == {
        "format": "csv",
        "encoding": "cp1252",
        "delimiter": ";",
        "null_values": ["NULL"],
    }
    assert mapping["identity"] == {"external_id": "CustomerNo"}
    attributes = mapping["attributes"]
    assert "CustomerNo" not in attributes.values()
    assert attributes["first_name"] == "First Name"
    assert attributes["last_name"] == "LastName"
    assert attributes["email"] == "E-Mail"
    assert attributes["zip"] == "Zip"  # leading zeros: stays text
    assert attributes["phone"] == "Phone"  # a leading +: stays text
    assert attributes["dob"] == {"column": "Birthday", "type": "date", "format": "%d.%m.%Y"}
    assert attributes["gender"] == {"column": "Sex", "map": {"Female": "F", "Male": "M"}}
    assert attributes["points"] == {"column": "Points", "type": "integer"}
    assert attributes["vip"] == {"column": "VIP", "type": "boolean"}
    assert attributes["created"] == {"column": "Created", "type": "time"}
    assert attributes["balance"] == {"column": "Balance", "type": "float"}
    assert attributes["signup_day"] == {"column": "SignupDay", "type": "date"}
    assert attributes["notes"] == "Notes"
    assert attributes["prefs"] == {"column": "Prefs", "type": "json"}


def test_every_mapping_line_says_what_it_saw(tmp_path: Path) -> None:
    text = draft(tmp_path / "crm.csv", crm_csv(), encoding="cp1252")
    entries = [line for line in text.splitlines() if line and line[0] not in "#["]
    assert entries and all(" # " in line for line in entries)
    by_key = {line.split(" = ")[0]: line for line in entries}
    assert "40/40 non-empty, all integers (0 … 273)" in by_key["points"]
    assert "10/40 non-empty" in by_key["notes"]
    assert "leading zeros" in by_key["zip"]
    assert "# [[events]]" in text and '# time = "Created"' in text


def test_sample_size_is_respected(tmp_path: Path) -> None:
    text = draft(tmp_path / "crm.csv", crm_csv(), sample_rows=5, encoding="cp1252")
    assert "from 5 sampled rows" in text
    assert "5/5 non-empty, all integers (0 … 28)" in text


@pytest.mark.parametrize(
    ("header", "rows", "identity"),
    [
        ("id,external_id,email", ["1,a,x@y.z", "2,b,w@y.z"], {"external_id": "external_id"}),
        ("Braze ID,email", ["b1,x@y.z", "b2,w@y.z"], {"braze_id": "Braze ID"}),
        ("user_id,email", ["7,x@y.z", "7,w@y.z"], {"email": "email"}),  # user_id not unique
        ("name,Mobile Phone", ["A,+491", "B,+492"], {"phone": "Mobile Phone"}),
        ("name,code", ["A,c1", "B,c2"], {"external_id": "name"}),  # a guess, marked as one
    ],
)
def test_identity_guess(
    tmp_path: Path, header: str, rows: list[str], identity: dict[str, str]
) -> None:
    text = draft(tmp_path / "a.csv", "\n".join([header, *rows, ""]).encode())
    assert tomllib.loads(text)["identity"] == identity
    if header.startswith("name,code"):
        assert "GUESS" in text


def test_header_only_file_still_drafts_a_mapping(tmp_path: Path) -> None:
    text = draft(tmp_path / "a.csv", b"email,first_name\n")
    mapping = tomllib.loads(text)
    assert mapping["identity"] == {"email": "email"}
    assert mapping["attributes"] == {"first_name": "first_name"}
    assert "0/0 non-empty, always empty" in text


def test_odd_column_names_become_snake_case_keys(tmp_path: Path) -> None:
    header = (
        'id,"Loyalty ""Gold"" Tier",Straße,"tab\there",#hash,LoyaltyPoints,Loyalty Points,country,#'
    )
    text = draft(tmp_path / "a.csv", f"{header}\n1,a,b,c,d,1,2,x,y\n2,e,f,g,h,3,4,z,w\n".encode())
    attributes = tomllib.loads(text)["attributes"]
    keys = {
        spec if isinstance(spec, str) else spec["column"]: key for key, spec in attributes.items()
    }
    assert keys == {
        'Loyalty "Gold" Tier': "loyalty_gold_tier",
        "Straße": "strasse",
        "tab\there": "tab_here",
        "#hash": "hash",
        "LoyaltyPoints": "loyalty_points",
        "Loyalty Points": "loyalty_points_2",  # two columns, two keys
        "country": "country_name",  # not 2-letter codes: not Braze's country
        "#": "column",
    }


def test_jsonl_draft_uses_top_level_keys_and_json_types(tmp_path: Path) -> None:
    lines = [
        {
            "external_id": f"u{i}",
            "age": 20 + i,
            "score": i / 2,
            "vip": i % 2 == 0,
            "address": {"city": "Berlin"},
            "signup": f"2021-01-0{1 + i}",
            "tags": ["a"],
        }
        for i in range(5)
    ]
    lines[2]["nickname"] = "Bee"
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines) + b"[1]\n"
    text = draft(tmp_path / "a.jsonl", data)
    mapping = tomllib.loads(text)
    assert "delimiter" not in mapping["input"]
    assert mapping["identity"] == {"external_id": "external_id"}
    assert mapping["attributes"] == {
        "age": {"column": "age", "type": "integer"},
        "score": {"column": "score", "type": "float"},
        "vip": {"column": "vip", "type": "boolean"},
        "address": {"column": "address", "type": "json"},
        "signup": {"column": "signup", "type": "date"},
        "tags": {"column": "tags", "type": "array"},
        "nickname": "nickname",
    }
    assert "1 unreadable rows skipped" in text
    assert "1/5 non-empty" in text


def test_braze_shaped_jsonl_needs_no_mapping(tmp_path: Path) -> None:
    data = b'{"attributes": [{"external_id": "1", "x": 1}]}\n{"events": []}\n'
    text = draft(tmp_path / "a.jsonl", data)
    assert tomllib.loads(text) == {}
    assert "without --mapping" in text


@pytest.mark.parametrize(
    ("values", "kind", "fmt"),
    [
        (["01234", "12345"], "string", None),
        (["+4915", "0151"], "string", None),
        (["12", "-3", "0"], "integer", None),
        (["99999999999999999999"], "string", None),
        (["1.5", "2", ".5", "1e3"], "float", None),
        (["true", "False", "YES"], "boolean", None),
        (["F"], "string", None),
        (["1", "0"], "boolean", None),
        (["1", "1"], "integer", None),
        (["2021-02-28", "1999-12-31"], "date", None),
        (["2021-02-30"], "string", None),
        (["2021-02-28T10:00:00Z", "2021-02-28"], "time", None),
        (["2021-02-28 10:00"], "time", None),
        (["31.12.1999", "01.01.2000"], "date", "%d.%m.%Y"),
        (["12/31/1999"], "date", "%m/%d/%Y"),
        (["31.12.1999 23:59"], "time", "%d.%m.%Y %H:%M"),
        (['{"a": 1}', "[1, 2]"], "json", None),
        (["hello", "12"], "string", None),
    ],
)
def test_type_rules(values: list[str], kind: str, fmt: str | None) -> None:
    guess = guess_type(values)
    assert (guess.type, guess.format) == (kind, fmt)


def test_an_undecodable_file_is_drafted_as_cp1252_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(crm_csv())  # cp1252: "Müller" is not UTF-8
    text = draft_file(str(path), ReadOptions())
    assert tomllib.loads(text)["input"]["encoding"] == "cp1252"
    assert "sampled lines are not UTF-8: read as cp1252" in text
    path.write_bytes("Straße;id\r\nA;1\r\n".encode("cp1252"))  # the header itself
    text = draft_file(str(path), ReadOptions())
    assert "the header is not UTF-8" in text and '"Straße"' in text
    given = draft_file(str(path), ReadOptions(encoding="iso8859-15"))
    assert tomllib.loads(given)["input"]["encoding"] == "iso8859-15"


def test_a_date_column_that_reads_both_ways_follows_the_file(tmp_path: Path) -> None:
    rows = [f"u{i},0{1 + i % 9}/0{1 + i % 8}/2020,{1 + i % 12}/{13 + i}/1980" for i in range(9)]
    text = draft(tmp_path / "a.csv", "\n".join(["id,since,born", *rows, ""]).encode())
    attributes = tomllib.loads(text)["attributes"]
    assert attributes["since"]["format"] == "%m/%d/%Y"
    assert "as the file's other dates are month-first" in text
    rows = [f"u{i};0{1 + i % 9}/0{1 + i % 8}/2020" for i in range(9)]
    text = draft(tmp_path / "b.csv", "\n".join(["id;since", *rows, ""]).encode())
    assert tomllib.loads(text)["attributes"]["since"]["format"] == "%d/%m/%Y"
    assert "a semicolon-separated export is usually European" in text


def test_suggestions_are_commented_lines_that_load_when_uncommented(tmp_path: Path) -> None:
    rows = [f"u{i};{['aktiv', 'inaktiv', 'gesperrt'][i % 3]};{'JN'[i % 2]}" for i in range(9)]
    text = draft(tmp_path / "a.csv", "\n".join(["id;Status;Newsletter", *rows, ""]).encode())
    mapping = tomllib.loads(text)
    assert mapping["attributes"]["status"] == "Status"
    suggested = next(line for line in text.splitlines() if line.startswith("# status = "))
    assert tomllib.loads(suggested[2:])["status"]["map"]["gesperrt"] == "blocked"
    assert "newsletter" not in mapping["attributes"]  # consent is no boolean attribute
    assert "subscription_groups" not in mapping  # ... nor sent before its group id is filled in


def test_consent_columns_are_drafted_as_subscription_groups_with_a_map(tmp_path: Path) -> None:
    rows = [f"u{i},{'YN'[i % 2]},{['opt-in', 'opt-out'][i % 2]},{i}" for i in range(9)]
    header = "id,Newsletter,SmsConsent,visits"
    text = draft(tmp_path / "a.csv", "\n".join([header, *rows, ""]).encode())
    assert set(tomllib.loads(text)["attributes"]) == {"visits"}
    uuid = "4b3c1e2a-1111-2222-3333-444455556666"
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(("# [[subscription_groups]]", "# id =", "# state ="))
    ]
    enabled = "\n".join(line[2:] for line in lines).replace("SUBSCRIPTION-GROUP-UUID", uuid)
    groups = tomllib.loads(enabled)["subscription_groups"]
    assert [g["state"] for g in groups] == [
        {"column": "Newsletter", "map": {"N": "unsubscribed", "Y": "subscribed"}},
        {"column": "SmsConsent", "map": {"opt-in": "subscribed", "opt-out": "unsubscribed"}},
    ]
    assert "# Consent in Newsletter: 9/9 non-empty" in text
    assert len(mapping_from_text("m.toml", text + enabled).subscription_groups) == 2


def test_gender_u_is_never_sent(tmp_path: Path) -> None:
    rows = [f"u{i},{'MFU'[i % 3]}" for i in range(6)]
    text = draft(tmp_path / "a.csv", "\n".join(["id,gender", *rows, ""]).encode())
    gender = tomllib.loads(text)["attributes"]["gender"]
    assert gender["map"]["U"] == ""  # counts as empty: Braze has no "U" (docs/braze.md)
    assert "Braze has no 'unknown'" in text
    mapping = mapping_from_text("draft.toml", text)
    (field,) = [f for f in mapping.attributes if f.key == "gender"]
    assert field.read({"gender": "U"}) is OMIT and field.read({"gender": "F"}) == "F"


def test_the_example_event_reads_an_epoch_time_column_as_its_attribute_does(
    tmp_path: Path,
) -> None:
    """Uncommented, the drafted example event sends rows: its time carries format = "epoch"
    (without it every row would fail invalid_time)."""
    rows = [f"u{i},{1556150400 + i * 86400}" for i in range(5)]
    text = draft(tmp_path / "d.csv", ("id,LastLoginEpoch\n" + "\n".join(rows) + "\n").encode())
    assert '# time = { column = "LastLoginEpoch", format = "epoch" }' in text
    uncommented = text
    for line in ("[[events]]", "name = ", "time = "):
        uncommented = uncommented.replace(f"# {line}", line)
    converter = Converter(mapping_from_text("m.toml", uncommented))
    row = SourceRow(RowRef("d.csv", 2), CsvRecord(("id", "LastLoginEpoch"), ["u0", "1556150400"]))
    item = converter.convert(row)
    assert isinstance(item, Item)
    assert item.events[0]["time"] == "2019-04-25T00:00:00+00:00"
