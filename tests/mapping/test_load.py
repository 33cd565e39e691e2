"""The mapping file: loading, every error message (file, line, column, key), headers, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.errors import MappingError
from importer.mapping.compiled import CompiledMapping, InputSettings
from importer.mapping.document import MappingDoc, dotted
from importer.mapping.load import default_mapping, load_mapping

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CRM_HEADER = [
    *("CustomerNo", "FirstName", "LastName", "Email", "Birthday", "Sex", "Points", "VIP"),
    *("Genres", "Created", "Plan", "SKU", "Amount", "Currency", "Qty", "OrderDate"),
]
IDENTITY = '[identity]\nexternal_id = "Id"\n'


def load(tmp_path: Path, text: str) -> CompiledMapping:
    path = tmp_path / "map.toml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


def error_of(tmp_path: Path, text: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load(tmp_path, text)
    return caught.value


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first ``needle`` in ``text``."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --- the fixtures ------------------------------------------------------------------------------


def test_crm_mapping_loads_and_fits_its_csv_header() -> None:
    mapping = load_mapping(FIXTURES / "crm.toml")
    mapping.check_header(CRM_HEADER, "crm.csv")
    assert mapping.path == str(FIXTURES / "crm.toml")
    assert mapping.input == InputSettings("csv", "utf-8", ",", ("NULL", "\\N", "n/a"), None)
    assert mapping.identity is not None and mapping.identity.key == "external_id"
    assert mapping.identity.update_existing_only is False
    assert len(mapping.events) == 1 and len(mapping.purchases) == 1
    assert mapping.columns() == frozenset(CRM_HEADER)


def test_jsonl_mapping_reports_dotted_columns_and_their_first_segment() -> None:
    mapping = load_mapping(FIXTURES / "crm-jsonl.toml")
    assert mapping.input.format == "jsonl"
    columns = mapping.columns()
    assert {"name.first", "order.sku", "order.date", "name", "order", "CustomerNo"} <= columns


# --- TOML itself -------------------------------------------------------------------------------


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    error = error_of(tmp_path, IDENTITY + "[attributes]\nname = \n")
    assert (error.path, error.line, error.column) == (str(tmp_path / "map.toml"), 4, 8)
    assert str(error).startswith(f"{tmp_path / 'map.toml'}:4:8: invalid TOML:")
    assert "(at line" not in str(error)


def test_missing_file_and_non_utf8_file_are_mapping_errors(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[identity]\nexternal_id = "Id"\n# caf\xe9\n')
    with pytest.raises(MappingError, match="not UTF-8") as caught:
        load_mapping(path)
    assert caught.value.line == 3


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (IDENTITY + '[attributes]\na = "A"\n').encode())
    assert load_mapping(path).columns() == frozenset({"Id", "A"})


# --- semantic errors: each names file, line, column and key ------------------------------------

# (mapping text, the text at the reported position, key, fragment of the message)
SEMANTIC_ERRORS = [
    (
        IDENTITY + '[attributes]\npoints = { colum = "Points", type = "integer" }\n',
        "colum",
        "attributes.points.colum",
        "unknown key 'colum' — did you mean 'column'?",
    ),
    (
        IDENTITY + '[atributes]\na = "A"\n',
        "atributes",
        "atributes",
        "unknown key 'atributes' — did you mean 'attributes'?",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", zzz = 1 }\n',
        "zzz",
        "attributes.a.zzz",
        "unknown key 'zzz' (expected one of: column, value, type",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "integr" }\n',
        "type",
        "attributes.a.type",
        "unknown type 'integr' — did you mean 'integer'?",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "number" }\n',
        "type",
        "attributes.a.type",
        "unknown type 'number' (types: string, integer, float, boolean, time, date, array, json)",
    ),
    (
        IDENTITY + "[attributes]\na = { column = 5 }\n",
        "column",
        "attributes.a.column",
        "expected a column name, got an integer",
    ),
    (
        IDENTITY + "[attributes]\na = 5\n",
        "a =",
        "attributes.a",
        "expected a column name or a table",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", value = 1 }\n',
        "a =",
        "attributes.a",
        "both 'column' and 'value'",
    ),
    (
        IDENTITY + '[attributes]\na = { type = "integer" }\n',
        "a =",
        "attributes.a",
        "no 'column' or 'value'",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "integer", separator = ";" }\n',
        "separator",
        "attributes.a.separator",
        "'separator' applies only to type array",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", format = "%Y" }\n',
        "format",
        "attributes.a.format",
        "'format' applies only to type time or date",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "date", format = "%Q" }\n',
        "format",
        "attributes.a.format",
        "bad strptime format '%Q'",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "date", format = "YYYY-MM-DD" }\n',
        "format",
        "attributes.a.format",
        "has no strptime codes",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "time", timezone = "Europe/Berln" }\n',
        "timezone",
        "attributes.a.timezone",
        "unknown time zone 'Europe/Berln' — did you mean 'Europe/Berlin'?",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "integer", default = "many" }\n',
        "default",
        "attributes.a.default",
        "'many' is not an integer",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", empty = "skip" }\n',
        "empty",
        "attributes.a.empty",
        'expected "omit" or "null"',
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", map = { x = [1] } }\n',
        "x =",
        "attributes.a.map.x",
        "expected a string, number or boolean, got an array",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "boolean", true = "J" }\n',
        "true",
        "attributes.a.true",
        "expected an array of strings, got a string",
    ),
    (
        IDENTITY
        + '[attributes]\na = { column = "A", type = "boolean", true = ["J"], false = ["j"] }\n',
        "a =",
        "attributes.a",
        "'j' is listed as both true and false",
    ),
    (
        IDENTITY + '[attributes]\na = { value = "x", default = "y" }\n',
        "default",
        "attributes.a.default",
        "'default' has no effect on a literal 'value'",
    ),
    (
        IDENTITY + '[attributes]\na = { column = "A", type = "array", separator = "" }\n',
        "separator",
        "attributes.a.separator",
        "the separator is empty",
    ),
    (
        IDENTITY + '[attributes]\nexternal_id = "Other"\n',
        'external_id = "Other',
        "attributes.external_id",
        "'external_id' is set by [identity]",
    ),
    (
        '[attributes]\na = "A"\n',
        "[attributes]",
        "identity",
        "missing [identity]: name exactly one of external_id, braze_id, email, phone or user_alias",
    ),
    (
        '[identity]\nupdate_existing_only = true\n[attributes]\na = "A"\n',
        "identity]",
        "identity",
        "no identifier",
    ),
    (
        '[identity]\nexternal_id = "Id"\nemail = "Mail"\n[attributes]\na = "A"\n',
        "email",
        "identity.email",
        "two identifiers, 'external_id' and 'email': keep one",
    ),
    (
        '[identity]\nexternal_id = "Id"\nupdate_existing_only = "yes"\n[attributes]\na = "A"\n',
        "update_existing_only",
        "identity.update_existing_only",
        "expected a boolean, got a string",
    ),
    (
        '[identity]\nuser_alias = { name = "Legacy" }\n[attributes]\na = "A"\n',
        "user_alias",
        "identity.user_alias",
        "missing 'label'",
    ),
    (
        '[identity]\nexternal_id = { column = "Id", default = "x" }\n[attributes]\na = "A"\n',
        "default",
        "identity.external_id.default",
        "unknown key 'default'",
    ),
    (
        IDENTITY + '[input]\nformat = "xml"\n[attributes]\na = "A"\n',
        "format",
        "input.format",
        'expected "csv" or "jsonl"',
    ),
    (
        IDENTITY + '[input]\nencoding = "klingon"\n[attributes]\na = "A"\n',
        "encoding",
        "input.encoding",
        "unknown encoding 'klingon'",
    ),
    (
        IDENTITY + '[input]\ndelimiter = ";;"\n[attributes]\na = "A"\n',
        "delimiter",
        "input.delimiter",
        "expected one character",
    ),
    (
        IDENTITY + '[input]\nnull_values = ["NULL", 0]\n[attributes]\na = "A"\n',
        "0]",
        "input.null_values[1]",
        "expected a string, got an integer",
    ),
    (
        IDENTITY + '[input]\nmax_cell_bytes = 0\n[attributes]\na = "A"\n',
        "max_cell_bytes",
        "input.max_cell_bytes",
        "expected a positive number of bytes",
    ),
    (
        IDENTITY,
        "[identity]",
        "",
        "the mapping sends nothing",
    ),
    (
        IDENTITY + '[events]\nname = "N"\n',
        "events]",
        "events",
        "write [[events]] (an array of tables), not [events]",
    ),
    (
        IDENTITY + '[[events]]\nname = "N"\n',
        "events]]",
        "events[0]",
        "missing 'time' (each of events needs name, time)",
    ),
    (
        IDENTITY + '[[purchases]]\nproduct_id = "P"\ncurrency = "C"\ntime = "T"\n',
        "purchases]]",
        "purchases[0]",
        "missing 'price'",
    ),
    (
        IDENTITY + '[[events]]\nname = "N"\ntime = "T"\n[events.properties]\nevent_name = "X"\n',
        "event_name",
        "events[0].properties.event_name",
        "'event_name' cannot be a property name",
    ),
    (
        IDENTITY + '[[events]]\nname = "N"\ntime = "T"\nproperties = { "$x" = "X" }\n',
        '"$x"',
        'events[0].properties."$x"',
        "cannot be a property name",
    ),
    (
        IDENTITY + '[[events]]\nname = "N"\ntime = { column = "T", empty = "null" }\n',
        "empty",
        "events[0].time.empty",
        "'empty' does not apply",
    ),
    (
        IDENTITY
        + '[[events]]\nname = "N"\ntime = "T"\n[[events]]\nname = "M"\n'
        + 'time = { column = "T", type = "tme" }\n',
        "type",
        "events[1].time.type",
        "unknown type 'tme' — did you mean 'time'?",
    ),
    (
        IDENTITY + '[[purchases]]\nproduct_id = "P"\ncurrency = "C"\ntime = "T"\n'
        'price = "P"\n[purchases.properties]\nq = { column = "Q", tpye = "integer" }\n',
        "tpye",
        "purchases[0].properties.q.tpye",
        "did you mean 'type'?",
    ),
]


GROUP = '[[subscription_groups]]\nid = { value = "4b3c1e2a-1111-2222-3333-444455556666" }\n'
SEMANTIC_ERRORS += [  # issue 12: subscription groups, operations, epoch times
    (
        IDENTITY + '[attributes]\np = { column = "P", op = "inc", default = 3 }\n',
        "default = 3",
        "attributes.p.default",
        "'default' is not for op 'inc'",
    ),
    (
        IDENTITY + '[attributes]\nfoo = { column = "X", attribute = "external_id" }\n',
        'attribute = "external_id"',
        "attributes.foo.attribute",
        "'external_id' is set by [identity]",
    ),
    (
        IDENTITY + '[attributes]\nfoo = { column = "X", attribute = "braze_id" }\n',
        'attribute = "braze_id"',
        "attributes.foo.attribute",
        "'braze_id' is set by [identity]",
    ),
    (
        IDENTITY
        + '[attributes]\nm = { column = "M", type = "boolean", attribute = "_merge_objects" }\n',
        'attribute = "_merge_objects"',
        "attributes.m.attribute",
        "'_merge_objects' steers how Braze applies the object",
    ),
    (
        IDENTITY + '[attributes]\np = { column = "P", op = "increment" }\n',
        'op = "increment"',
        "attributes.p.op",
        "unknown op 'increment' (ops: set, inc, add, remove, merge)",
    ),
    (
        IDENTITY + '[attributes]\np = { column = "P", type = "float", op = "inc" }\n',
        'type = "float"',
        "attributes.p.type",
        "op 'inc' needs type = \"integer\", not 'float'",
    ),
    (
        IDENTITY + '[attributes]\np = { column = "P", op = "inc", empty = "null" }\n',
        'empty = "null"',
        "attributes.p.empty",
        "would unset the attribute: not with op 'inc'",
    ),
    (
        IDENTITY + '[attributes]\nt = { column = "A", op = "add" }\n'
        'u = { column = "B", op = "add", attribute = "t" }\n',
        "u = {",
        "attributes.u",
        "attribute 't' is already written by attributes.t",
    ),
    (
        IDENTITY
        + '[attributes]\nm = { column = "M", op = "merge" }\nj = { column = "J", type = "json" }\n',
        "j = {",
        "attributes.j",
        "_merge_objects: true applies to the whole attributes object",
    ),
    (
        IDENTITY + GROUP + 'state = { column = "S", map = { Y = "yes" } }\n',
        "Y = ",
        "subscription_groups[0].state.map.Y",
        'expected "subscribed", "unsubscribed" or "" (send nothing)',
    ),
    (
        IDENTITY + GROUP + 'state = { value = "subscribed" }\n',
        'value = "subscribed"',
        "subscription_groups[0].state.value",
        "unknown key 'value'",
    ),
    (
        IDENTITY + '[[subscription_groups]]\nstate = "S"\n',
        "subscription_groups]]",
        "subscription_groups[0]",
        "missing 'id'",
    ),
    (
        IDENTITY + GROUP + 'state = "S"\ndouble_opt_in = "yes"\n',
        "double_opt_in",
        "subscription_groups[0].double_opt_in",
        "expected a boolean, got a string",
    ),
    (
        IDENTITY + '[attributes]\nn = "N"\n[operations]\nkey = "Txn"\n',
        "key =",
        "operations.key",
        "no attribute sends an operation",
    ),
    (
        IDENTITY + '[attributes]\nt = { column = "T", type = "time", format = "epoch", '
        'timezone = "Europe/Berlin" }\n',
        "timezone",
        "attributes.t.timezone",
        "a Unix time (format 'epoch') is UTC: no timezone",
    ),
    (
        IDENTITY + '[attributes]\nt = { column = "T", type = "time", format = "epoch_sec" }\n',
        "format",
        "attributes.t.format",
        "format 'epoch_sec' has no strptime codes — did you mean 'epoch_ms'?",
    ),
]


@pytest.mark.parametrize(("text", "at", "key", "message"), SEMANTIC_ERRORS)
def test_semantic_errors_name_file_line_column_and_key(
    tmp_path: Path, text: str, at: str, key: str, message: str
) -> None:
    error = error_of(tmp_path, text)
    line, column = position(text, at)
    assert (error.line, error.column, error.key) == (line, column, key)
    assert message in str(error)
    prefix = f"{tmp_path / 'map.toml'}:{line}:{column}: "
    assert str(error).startswith(prefix + (f"{key}: " if key else ""))


def test_literals_and_defaults_are_converted_once_at_load_time(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        IDENTITY + "[attributes]\n"
        'when = { value = 2024-05-01T10:00:00, type = "time", timezone = "Europe/Berlin" }\n'
        "day = { value = 2024-05-01 }\n"
        'count = { value = "7", type = "integer" }\n'
        "n = { value = 7 }\n"
        's = { value = 7, type = "string" }\n'
        'tags = { column = "T", type = "array", default = ["a", "b"] }\n',
    )
    values = {item.key: item.read({}) for item in mapping.attributes}
    assert values == {
        "when": "2024-05-01T10:00:00+02:00",
        "day": "2024-05-01",
        "count": 7,
        "n": 7,
        "s": "7",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize("literal", ["nan", "-inf", "[1.5, inf]", "{ a = { b = nan } }"])
def test_a_literal_json_cannot_carry_is_refused_where_it_is(tmp_path: Path, literal: str) -> None:
    """orjson would send nan and inf as null; with --state the sent value would then differ
    from the remembered one, and the row would go out again every night."""
    text = IDENTITY + f"[attributes]\nx = {{ value = {literal} }}\n"
    error = error_of(tmp_path, text)
    assert "nan or inf" in str(error)
    assert (error.line, error.key) == (text.count("\n"), "attributes.x.value")


# --- the header --------------------------------------------------------------------------------


def test_missing_column_names_mapping_key_column_and_header(tmp_path: Path) -> None:
    text = IDENTITY + '[attributes]\npoints = { column = "Pointz", type = "integer" }\n'
    mapping = load(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        mapping.check_header(["Id", "Points", "Name"], "crm.csv")
    error = caught.value
    assert error.exit_code == 2
    assert (error.path, error.key) == (str(tmp_path / "map.toml"), "attributes.points")
    assert (error.line, error.column) == position(text, "points")
    message = str(error)
    assert "column 'Pointz' is not in the header of crm.csv — did you mean 'Points'?" in message
    assert message.endswith("the header has: Id, Points, Name")


def test_every_missing_column_is_listed_once(tmp_path: Path) -> None:
    text = (
        '[identity]\nexternal_id = "Id"\n[attributes]\na = "A"\nb = "B"\n'
        '[[events]]\nname = "A"\ntime = "T"\n'
    )
    with pytest.raises(MappingError) as caught:
        load(tmp_path, text).check_header(["Id"], "x.csv")
    assert caught.value.key == "attributes.a"
    assert "also missing: 'B', 'T';" in str(caught.value)


def test_header_with_all_columns_passes(tmp_path: Path) -> None:
    mapping = load(tmp_path, IDENTITY + '[attributes]\na = "A"\nb = { value = 1 }\n')
    mapping.check_header(["A", "Id", "unused"], "x.csv")


# --- no --mapping ------------------------------------------------------------------------------


def test_default_mapping_takes_identifier_by_priority() -> None:
    mapping = default_mapping(["email", "name", "external_id", "phone", " "], "x.csv")
    assert mapping.identity is not None and mapping.identity.key == "external_id"
    assert [item.key for item in mapping.attributes] == ["email", "name", "phone"]
    assert mapping.path is None and mapping.input == InputSettings()
    assert default_mapping(["phone", "braze_id"], "x.csv").identity.key == "braze_id"  # type: ignore[union-attr]


def test_default_mapping_without_identifier_column_names_the_header() -> None:
    with pytest.raises(MappingError) as caught:
        default_mapping(["id", "name"], "people.csv")
    assert caught.value.exit_code == 2
    assert "people.csv" in str(caught.value)
    assert "external_id, braze_id, email, phone" in str(caught.value)
    assert str(caught.value).endswith("the header has: id, name")


def test_default_mapping_for_jsonl_takes_lines_as_they_are() -> None:
    mapping = default_mapping(None, "x.jsonl")
    assert mapping.identity is None and mapping.columns() == frozenset()


# --- the key locator ---------------------------------------------------------------------------


def test_locator_handles_quoted_keys_multiline_values_and_table_arrays() -> None:
    text = (
        '# comment [not a table]\n[attributes]\n"odd key" = "x"\nmulti = """a\nb = 1"""\n'
        "arr = [\n  1,\n  { k = 2 },\n]\n[[events]]\nname = 'n'\n[[events]]\n"
        "name = 'm' # trailing\n[events.properties]\np = { q = 'r' }\n"
    )
    doc = MappingDoc("m.toml", text)
    assert doc.locate(("attributes", "odd key")) == position(text, '"odd key"')
    assert doc.locate(("attributes", "arr", 1, "k")) == position(text, "k = 2")
    assert doc.locate(("events", 1, "name")) == position(text, "name = 'm'")
    assert doc.locate(("events", 1, "properties", "p", "q")) == position(text, "q = 'r'")
    assert doc.locate(("attributes", "b")) == (2, 2)  # falls back to the table
    assert dotted(("events", 1, "properties", "odd key")) == 'events[1].properties."odd key"'


# --- issue 12: subscription groups, operations, epoch times ------------------------------------


def test_the_contract_mapping_loads_with_its_groups_operations_and_key(tmp_path: Path) -> None:
    text = (
        IDENTITY + GROUP + 'state = { column = "NewsOptIn", map = { Y = "subscribed" } }\n'
        '[[subscription_groups]]\nid = "SmsGroup"\nstate = "SmsOptIn"\ndouble_opt_in = true\n'
        "[attributes]\n"
        'points = { column = "PointsEarned", type = "integer", op = "inc" }\n'
        'tags = { column = "TagsAdded", type = "array", op = "add" }\n'
        'tags_gone = { column = "TagsRemoved", type = "array", op = "remove",'
        ' attribute = "tags" }\n'
        'prefs = { column = "PrefsJson", type = "json", op = "merge" }\n'
        'last_login = { column = "LastLoginEpoch", type = "time", format = "epoch" }\n'
        '[operations]\nkey = "TxnId"\n'
    )
    mapping = load(tmp_path, text)
    assert [(f.key, f.op) for f in mapping.attributes] == [
        ("points", "inc"),
        ("tags", "add"),
        ("tags", "remove"),
        ("prefs", "merge"),
        ("last_login", "set"),
    ]
    assert [g.double_opt_in for g in mapping.subscription_groups] == [False, True]
    assert mapping.operations_key is not None and mapping.operations_key.column == "TxnId"
    assert {"SmsGroup", "SmsOptIn", "NewsOptIn", "TxnId"} <= mapping.columns()
    with pytest.raises(MappingError, match="column 'TxnId' is not in the header"):
        mapping.check_header(
            [
                "Id",
                "NewsOptIn",
                "SmsGroup",
                "SmsOptIn",
                "PointsEarned",
                "TagsAdded",
                "TagsRemoved",
                "PrefsJson",
                "LastLoginEpoch",
            ],
            "x.csv",
        )
