"""Compiled checks (importer.convert.checks) refuse exactly what validate.check_object refuses.

The converter checks a mapped object only where its fields' values can break a rule. Held to
check_object two ways: each rule's claims (the shapes and text lengths it always accepts) over
samples of those shapes, and whole conversions over many mappings and hostile rows — an Item's
objects all pass check_object, and a validate failure carries check_object's first violation,
code and message, for the first object that has one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.convert.checks import (
    BOOL,
    DATE,
    FLOAT,
    INT,
    NULL,
    TEXT,
    TIME,
    FieldValues,
    field_check,
    properties_check,
    rule_for,
)
from importer.convert.converter import Converter
from importer.errors import RecordError
from importer.mapping.document import MappingDoc
from importer.mapping.load import compile_mapping
from importer.mapping.times import date_converter, time_converter
from importer.models import (
    ARRAYS,
    CsvRecord,
    Item,
    Record,
    RowFailure,
    RowRef,
    RowSkipped,
    SourceRow,
)
from importer.rules.objects import EVENT_FIELDS, PURCHASE_FIELDS, check_object
from importer.rules.user_fields import ATTRIBUTE_FIELDS
from importer.send import wire_of

REF = RowRef("t.csv", 2)
OPS = {"add", "remove"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- each rule's claims -------------------------------------------------------------------------

ZONES = st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/St_Johns")])
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none() | st.timezones(),
)
TIME_FORMATS = st.sampled_from([None, "%d.%m.%Y %H:%M", "%Y%m%d %H%M%S", "%d/%m/%Y %H:%M:%S %z"])


def converted(convert: Callable[[Any], Any], value: Any) -> Any:
    """What our converter makes of ``value`` (None when it refuses it)."""
    try:
        return convert(value)
    except RecordError:
        return None


def _as_text(moment: datetime, fmt: str | None) -> str:
    return moment.isoformat(sep=" ") if fmt is None else moment.strftime(fmt)


TIMES = st.one_of(  # what time fields produce: from ISO text, custom formats, epoch numbers
    st.builds(
        lambda moment, fmt, zone: converted(time_converter(fmt, zone), _as_text(moment, fmt)),
        MOMENTS,
        TIME_FORMATS,
        ZONES,
    ),
    st.builds(
        lambda n: converted(time_converter(None, UTC), n),
        st.integers(-(10**11), 10**11) | st.floats(-1e11, 1e11),
    ),
).filter(bool)
DATES = st.one_of(  # what date fields produce
    st.dates().map(lambda day: day.isoformat()),
    st.builds(lambda moment: converted(date_converter(None), moment.isoformat()), MOMENTS),
    st.builds(
        lambda day: converted(date_converter("%d.%m.%Y"), day.strftime("%d.%m.%Y")), st.dates()
    ),
).filter(bool)
SHAPE_SAMPLES: dict[str, st.SearchStrategy[Any]] = {
    TEXT: st.text(max_size=40),
    INT: st.integers(-(2**63), 2**63 - 1),
    FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    BOOL: st.booleans(),
    NULL: st.none(),
    TIME: TIMES,
    DATE: DATES,
}
FIELDS = [
    *(("attributes", key) for key in [*ATTRIBUTE_FIELDS, "custom", ""]),
    *(("events", key) for key in EVENT_FIELDS if key != "properties"),
    *(("purchases", key) for key in PURCHASE_FIELDS if key != "properties"),
]


@pytest.mark.parametrize(("array", "key"), FIELDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_shape_a_rule_accepts_passes_its_checker(array: str, key: str, data: Any) -> None:
    rule = rule_for(array, key)
    assert rule is not None
    for shape in rule.accepts:
        value = data.draw(SHAPE_SAMPLES[shape], label=shape)
        assert rule.check(key, value) is None, (shape, value)
    shortest, longest = rule.text
    if shortest <= longest:
        for length in {shortest, min(longest, shortest + 7), min(longest, 1200)}:
            text = data.draw(st.text(min_size=length, max_size=length), label="text")
            assert rule.check(key, text) is None, (length, text)
    if rule.items:  # a list passes unless a text item is longer than the rule's texts
        items = st.text(max_size=longest) | st.integers() | st.none() | st.floats()
        value = data.draw(st.lists(items | st.lists(st.text(min_size=300)), max_size=4))
        assert rule.check(key, value) is None, value
        nested = data.draw(st.dictionaries(st.text(max_size=4), items, max_size=3))
        if not (("inc" in nested and len(nested) == 1) or (nested and nested.keys() <= OPS)):
            assert rule.check(key, nested) is None, nested  # not an operation


def test_a_field_keeps_a_check_only_if_its_values_can_break_the_rule() -> None:
    assert field_check("attributes", FieldValues("first_name", "string")) is None
    assert field_check("attributes", FieldValues("points", "integer")) is None
    assert field_check("attributes", FieldValues("seen", "time")) is None
    assert field_check("events", FieldValues("time", "time")) is None
    assert field_check("purchases", FieldValues("price", "float")) is None
    assert field_check("events", FieldValues("name", "literal", ("signup",))) is None
    assert field_check("purchases", FieldValues("currency", "literal", ("EUR",))) is None
    # values that can break the rule keep it
    assert field_check("attributes", FieldValues("nick", "string")) is not None  # > 255
    assert field_check("attributes", FieldValues("email", "string")) is not None
    assert field_check("attributes", FieldValues("dob", "string")) is not None
    assert field_check("attributes", FieldValues("vip", "boolean", (None,))) is None
    assert field_check("attributes", FieldValues("push_token_import", "boolean", (None,)))
    assert field_check("purchases", FieldValues("currency", "string")) is not None
    assert field_check("purchases", FieldValues("currency", "literal", ("XYZ",))) is not None
    assert field_check("purchases", FieldValues("quantity", "integer")) is not None
    assert field_check("attributes", FieldValues("tags", "array")) is not None
    assert field_check("attributes", FieldValues("", "integer")) is not None
    assert properties_check("events", [FieldValues("n", "integer")]) is None
    assert properties_check("events", [FieldValues("plan", "string")]) is not None
    assert properties_check("events", [FieldValues("x" * 256, "integer")]) is not None
    assert properties_check("events", [FieldValues("deep", "json")]) is not None


# --- whole conversions -------------------------------------------------------------------------

ATTRIBUTES = """
[attributes]
first_name = "s"
last_name = { column = "n", type = "integer" }
email = "e"
phone = "s2"
gender = { column = "s", map = { Ann = "F", Bo = "M", x = "X" }, empty = "null" }
country = "c"
dob = { column = "d", type = "date" }
language = { column = "j", type = "json" }
image_url = { column = "s2", default = "%s" }
email_subscribe = "s"
push_subscribe = { column = "b", type = "boolean" }
push_token_import = { column = "b", type = "boolean", empty = "null" }
time_zone = { column = "t", type = "time" }
current_location = { column = "j", type = "json" }
date_of_first_session = "d"
custom = "s"
n = { column = "n", type = "integer" }
f = { column = "f", type = "float" }
a = { column = "a", type = "array" }
j = { column = "j", type = "json" }
t = { column = "t", type = "time", timezone = "Europe/Berlin" }
fine = { value = ["a", 1, { inc = 2 }] }
""" % ("u" * 1100)
# Literals that break a rule: every row with attributes fails, at the first of them in order.
BAD_LITERALS = """
[attributes]
n = { column = "n", type = "integer" }
email = "e"
long = { value = "%s" }
listed = { value = ["a", "%s"] }
nested = { value = { inc = "x" } }
""" % ("y" * 256, "z" * 256)  # noqa: UP031

EVENTS = """
[[events]]
name = "s"
time = "t"
app_id = "s2"
[events.properties]
plan = "s"
count = { column = "n", type = "integer" }
when = { column = "t", type = "time" }

[[events]]
name = { value = "fixed" }
time = { column = "d", type = "date" }
[events.properties]
%s = "s"

[[events]]
name = "s"
time = { column = "s2", type = "string" }
[events.properties]
deep = { column = "j", type = "json" }
tags = { column = "a", type = "array" }

[[events]]
name = { column = "n", type = "integer" }
time = "t"
app_id = { column = "n", type = "integer" }
"""

PURCHASES = """
[[purchases]]
product_id = "s"
currency = "c"
price = { column = "f", type = "float" }
time = "t"
quantity = { column = "n", type = "integer", empty = "null" }

[[purchases]]
product_id = "s2"
currency = { value = "XYZ" }
price = { column = "j", type = "json" }
time = "t"
quantity = { column = "q", type = "integer", default = 0 }
[purchases.properties]
note = "s2"

[[purchases]]
product_id = { column = "n", type = "integer" }
currency = { column = "c", map = { euro = "EUR" } }
price = { column = "n", type = "integer" }
time = { column = "t", type = "string" }
"""

IDENTITIES = [
    '[identity]\nexternal_id = "id"\n',
    '[identity]\nexternal_id = "id"\nupdate_existing_only = true\n',
    '[identity]\nemail = "id"\n',
    '[identity]\nphone = "id"\n',
    '[identity]\nbraze_id = "id"\n',
    '[identity]\nuser_alias = { name = "id", label = "crm" }\n',
]


def without_identity_key(identity: str, table: str) -> str:
    """``table`` minus the attribute the identity sets (email = ..., phone = ...)."""
    key = identity.splitlines()[1].split(" ")[0]
    return "\n".join(line for line in table.splitlines() if not line.startswith(f"{key} ="))


MAPPINGS = [
    *(identity + without_identity_key(identity, ATTRIBUTES) for identity in IDENTITIES),
    IDENTITIES[0] + BAD_LITERALS,
    IDENTITIES[0] + EVENTS % ('"' + "k" * 256 + '"'),
    IDENTITIES[2] + EVENTS % "ok",
    IDENTITIES[0] + PURCHASES,
    IDENTITIES[5] + ATTRIBUTES + EVENTS % "ok" + PURCHASES,
]
CONVERTERS = [
    Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text))) for text in MAPPINGS
]

TEXTS = [
    "", " ", "Ann", "Bo", "x", "M", "F", "de", "DEU", "d1", "EUR", "XYZ", "0", "1", "101", "-5",
    "7", "yes", "no", "opted_in", "subscribed", "a@b.co", "a@b", "+49 30 1234", "12", "(1)",
    "2024-02-29", "2023-02-29", "2024-05-01T10:00:00Z", "2024-05-01 10:00", "3.5", "nan",
    "a|b", "|", '{"inc": 2}', '{"inc": "x"}', '{"longitude": 1, "latitude": 2}', "[1, [2]]",
    "null", '"s"', '["' + "w" * 300 + '"]', "x" * 255, "x" * 256, "é" * 247, "é" * 246,
    "u" * 1025, "$x",
]  # fmt: skip
CELL = st.sampled_from(TEXTS) | st.text(max_size=8)
BIG_JSON = "[" + ",".join(['"' + "w" * 250 + '"'] * 420) + "]"  # over 100 KB as properties
PLAUSIBLE = {  # so that objects get built often enough to fail later rules
    "id": ["u1", "a@b.co", "+49 30 1234", "é" * 247],
    "d": ["2024-02-29", "2024-05-01"],
    "t": ["2024-05-01T10:00:00Z", "2024-05-01 10:00"],
    "n": ["5", "0", "101"],
    "s2": ["2024-05-01T10:00:00Z", "2024-13-01T10:00:00Z"],
    "j": ["2", '{"inc": 2}', BIG_JSON],
    "a": ["a|b", "x" * 256],
}
COLUMNS = ["id", "s", "s2", "n", "f", "b", "e", "c", "d", "t", "a", "j", "q"]
CELLS = {column: CELL | st.sampled_from(PLAUSIBLE.get(column, ["x"])) for column in COLUMNS}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(-1e9, 1e9) | CELL,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
    max_leaves=6,
)


def first_violation(objects: dict[str, list[dict[str, Any]]]) -> tuple[str, str] | None:
    """What the converter reported before it compiled checks: check_object, object by object."""
    names = {"attributes": "attributes", "events": "event", "purchases": "purchase"}
    for array in ARRAYS:
        for obj in objects.get(array, []):
            violation = check_object(array, obj)
            if violation is not None:
                return violation.code, f"{names[array]}: {violation.message}"
    return None


def assert_same_as_check_object(converter: Converter, record: Record) -> None:
    out = converter.convert(SourceRow(REF, record))
    if isinstance(out, Item):
        assert first_violation(out.objects()) is None
    elif isinstance(out, RowFailure) and out.stage == "validate":
        assert out.objects is not None
        assert first_violation(out.objects) == (out.error, out.message)


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.fixed_dictionaries(CELLS))
def test_csv_rows_are_refused_exactly_as_check_object_refuses(
    index: int, record: dict[str, str]
) -> None:
    assert_same_as_check_object(CONVERTERS[index], record)


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.fixed_dictionaries(CELLS))
def test_csv_cells_are_refused_exactly_as_check_object_refuses(
    index: int, record: dict[str, str]
) -> None:
    """The same rows read by position (CsvRecord): the code with the checks fused into it."""
    header = tuple(record)
    assert_same_as_check_object(CONVERTERS[index], CsvRecord(header, list(record.values())))


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.fixed_dictionaries(CELLS), as_cells=st.booleans())
def test_fused_checks_give_what_checking_each_object_after_building_gives(
    index: int, record: dict[str, str], as_cells: bool
) -> None:
    """A fused check that fails sends the row to the general code (Suspect); one that passes
    must mean the object check passes too: the same outcome either way, to the message."""
    text = MAPPINGS[index]
    general = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)), False)
    data: Record = CsvRecord(tuple(record), list(record.values())) if as_cells else record
    fused_out = CONVERTERS[index].convert(SourceRow(REF, data))
    general_out = general.convert(SourceRow(REF, data))
    assert fused_out == general_out


class _Stepwise(Converter):
    """The converter taking each step (identity, attributes, each event and purchase) by its
    own call, as before rows were converted in one generated call."""

    def _row_for(self, code: Any) -> None:
        return None


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.fixed_dictionaries(CELLS))
def test_a_csv_row_converted_in_one_call_gives_what_the_steps_give(
    index: int, record: dict[str, str]
) -> None:
    """The row function (builder.row_function) makes the Item the steps make, and leaves every
    other outcome (failures, skips, the messages) to them."""
    text = MAPPINGS[index]
    stepwise = _Stepwise(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    data = CsvRecord(tuple(record), list(record.values()))
    assert CONVERTERS[index].convert(SourceRow(REF, data)) == stepwise.convert(SourceRow(REF, data))
    alias = "user_alias" in text
    assert (CONVERTERS[index]._row is None) is alias  # the row function was made and used


def _wired(text: str) -> Converter:
    converter = Converter(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    converter.to_wire()
    return converter


WIRED = [_wired(text) for text in MAPPINGS]


def _as_json(out: Item | RowFailure | RowSkipped) -> object:
    """An Item with its objects as the JSON the packer puts in the body; anything else as it is."""
    if not isinstance(out, Item) or out.wire is not None:
        return out
    return out._replace(attributes=(), events=(), purchases=(), wire=wire_of(out))


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.fixed_dictionaries(CELLS))
def test_a_row_converted_to_json_gives_the_json_of_what_the_steps_give(
    index: int, record: dict[str, str]
) -> None:
    """Converter.to_wire: the row function's Item carries the very bytes the packer would make
    of the steps' Item, and every other outcome (failures, skips, the messages) is theirs."""
    text = MAPPINGS[index]
    stepwise = _Stepwise(compile_mapping(MappingDoc("m.toml", text), tomllib.loads(text)))
    row = SourceRow(REF, CsvRecord(tuple(record), list(record.values())))
    out = WIRED[index].convert(row)
    assert _as_json(out) == _as_json(stepwise.convert(row))


@pytest.mark.parametrize("index", range(len(CONVERTERS)))
@SETTINGS
@given(record=st.dictionaries(st.sampled_from(COLUMNS), JSON))
def test_jsonl_rows_are_refused_exactly_as_check_object_refuses(
    index: int, record: dict[str, Any]
) -> None:
    assert_same_as_check_object(CONVERTERS[index], record)


def test_each_rule_is_refused_with_check_object_s_code() -> None:
    purchases = CONVERTERS[MAPPINGS.index(IDENTITIES[0] + PURCHASES)]
    row = {"id": "u1", "s": "p", "c": "EUR", "f": "1.5", "t": "2024-05-01", "n": "5", "q": ""}
    out = purchases.convert(SourceRow(REF, {**row, "s2": "p2", "j": "2"}))
    assert isinstance(out, RowFailure) and out.error == "invalid_currency"  # the XYZ literal
    assert out.message == "purchase: currency must be an ISO 4217 code: 'XYZ'"
    assert out.objects is not None and len(out.objects["purchases"]) == 3
    out = purchases.convert(SourceRow(REF, row))  # the third purchase: an integer product_id
    assert isinstance(out, RowFailure) and out.error == "invalid_product_id"
    out = purchases.convert(SourceRow(REF, {**row, "c": "EU"}))
    assert isinstance(out, RowFailure) and out.error == "invalid_currency"
    assert out.message == "purchase: currency must be an ISO 4217 code: 'EU'"
    out = purchases.convert(SourceRow(REF, {**row, "s": "p" * 256}))
    assert isinstance(out, RowFailure) and out.error == "invalid_product_id"
    for quantity in ("0", ""):  # "" is sent as null
        out = purchases.convert(SourceRow(REF, {**row, "n": quantity}))
        assert isinstance(out, RowFailure) and out.error == "invalid_quantity"
        assert out.message == "purchase: quantity must be an integer 1..100"
    long_id = CONVERTERS[0].convert(SourceRow(REF, {"id": "é" * 494, "s": "Ann"}))
    assert isinstance(long_id, RowFailure) and long_id.error == "external_id_too_long"
    assert long_id.message.startswith("attributes: external_id exceeds 987 bytes")


def test_a_passed_value_is_remembered_by_type_so_true_never_passes_as_one() -> None:
    """Checks remember text and int values that passed; a bool equal to a remembered int must
    still be checked (True == 1 in a set)."""
    from importer.convert.checks import FieldValues, first_violation, object_checks

    checks = object_checks("purchases", [FieldValues("quantity", "integer")])
    assert first_violation({"quantity": 1}, checks) is None
    assert 1 in checks[0].passed
    violation = first_violation({"quantity": True}, checks)
    assert violation is not None and violation.code == "invalid_quantity"
    assert first_violation({"quantity": 0}, checks) is not None
    assert 0 not in checks[0].passed


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 200) | st.floats() | CELL | st.text(min_size=250),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
    max_leaves=5,
)
CHECKED = [
    *(("attributes", key) for key in ("email", "phone", "gender", "country", "dob", "nick")),
    *(("attributes", key) for key in ("external_id", "first_name", "_merge_objects")),
    *(("purchases", key) for key in ("product_id", "currency", "quantity", "price", "time")),
    ("events", "properties"),
]


@SETTINGS
@given(
    fields=st.lists(st.sampled_from(CHECKED), min_size=1, max_size=5, unique=True),
    data=st.data(),
)
def test_the_compiled_checks_find_what_first_violation_finds(
    fields: list[tuple[str, str]], data: Any
) -> None:
    """``compiled`` is ``first_violation`` unrolled, the remembered values included: the same
    first violation, object after object, with checks that keep remembering."""
    from importer.convert.checks import FieldCheck, compiled, first_violation

    kept: list[FieldCheck] = []
    for array, key in fields:
        rule = rule_for(array, key)
        assert rule is not None
        kept.append(FieldCheck(key, *rule.text, rule.check, set(), rule.items))
    checks = tuple(kept)
    twin = tuple(check._replace(passed=set()) for check in checks)
    check = compiled(twin)
    keys = [key for _, key in fields]
    edges = [["x" * 255, 2], [None, "é" * 256], "x" * 256, True, 1, {"inc": "x"}, {"add": [[]]}]
    edges += [{}, {"inc": 1.5, "add": 1}, {"remove": [[1]]}, {"add": 2, "x": 1}, {"a": [[]]}]
    objects = [*({key: value for key in keys} for value in edges)]
    objects += data.draw(st.lists(st.dictionaries(st.sampled_from(keys), VALUES), max_size=6))
    for obj in objects:
        assert check(obj) == first_violation(obj, checks), obj
