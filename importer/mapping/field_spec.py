"""One mapped field — a bare column name or a table of options — checked and compiled once.

Every mistake is reported through ``MappingDoc.fail`` with the key path, so the message names
the file, line, column and key (``attributes.points.colum: unknown key 'colum' — did you mean
'column'?``). The result is a ``CompiledField`` whose ``read(record)`` the converter calls per row.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from importer.errors import RecordError
from importer.mapping import readers, time_formats, times, values
from importer.mapping.document import KeyPath, MappingDoc, did_you_mean, dotted
from importer.mapping.readers import FieldReader
from importer.mapping.values import OMIT, ValueConverter
from importer.read import MAX_DEPTH, json_depth

TYPES = ("string", "integer", "float", "boolean", "time", "date", "array", "json")
OPTIONS = (
    *("column", "value", "type", "format", "timezone", "map", "default", "empty"),
    *("separator", "true", "false"),
)
ATTRIBUTE_OPTIONS = (*OPTIONS, "op", "attribute")
IDENTITY_OPTIONS = ("column", "map")
_ONLY_FOR = {
    "format": ("time", "date"),
    "timezone": ("time",),
    "separator": ("array",),
    "true": ("boolean",),
    "false": ("boolean",),
}
_TOML_KINDS = {str: "a string", int: "an integer", float: "a float", bool: "a boolean"}
_TOML_KINDS.update({list: "an array", dict: "a table", dt.datetime: "a date-time"})


@dataclass(frozen=True, slots=True)
class CompiledField:
    key: str  # the key in the Braze object: "points", "time", "plan"
    where: KeyPath  # where the field is in the mapping file
    column: str | None  # the column (JSONL: key or a.b path) it reads; None for a literal
    read: FieldReader
    # The type its values have (one of TYPES); "literal" for an untyped { value = ... }, sent as
    # written. Tells the converter which of Braze's rules a value of this field can break.
    kind: str = "string"
    # What the value does to the attribute (values.OPERATIONS): "set" replaces it; "inc", "add",
    # "remove" and "merge" send an operation (docs/braze.md, Operations on attributes).
    op: str = "set"


def kind_of(value: Any) -> str:
    return _TOML_KINDS.get(type(value), type(value).__name__)


def expect(doc: MappingDoc, where: KeyPath, value: Any, kind: type, what: str = "") -> Any:
    """Fail unless ``value`` is of TOML ``kind`` (a bool is not an integer here)."""
    if type(value) is not kind:
        doc.fail(where, f"expected {what or _TOML_KINDS[kind]}, got {kind_of(value)}")
    return value


def check_keys(
    doc: MappingDoc, where: KeyPath, table: Mapping[str, Any], allowed: tuple[str, ...]
) -> None:
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
            doc.fail((*where, key), f"unknown key {key!r}{hint}")


def compile_field(
    doc: MappingDoc,
    where: KeyPath,
    spec: Any,
    *,
    nulls: frozenset[str],
    default_type: str | None = None,
    required: bool = False,
    allowed: tuple[str, ...] = OPTIONS,
) -> CompiledField:
    """``default_type`` is the type when none is given (event ``time``: "time"); None means
    string for a column and the value as written for a literal."""
    options = _options(doc, where, spec, allowed)
    op = _operation(doc, where, options)
    explicit = options.get("type", values.OPERATION_TYPES.get(op, default_type))
    kind = _type(doc, where, explicit)
    if op != "set" and kind != values.OPERATION_TYPES[op]:
        wanted = values.OPERATION_TYPES[op]
        doc.fail((*where, "type"), f'op {op!r} needs type = "{wanted}", not {kind!r}')
    for option, types in _ONLY_FOR.items():
        if option in options and kind not in types:
            doc.fail((*where, option), f"{option!r} applies only to type {' or '.join(types)}")
    convert, parse = _converter(doc, where, kind, options)
    if op != "set" and convert is not None:
        convert = values.as_operation(op, convert)
        parse = values.as_operation(op, parse) if parse is not None else None
    key = _attribute(doc, where, options)
    if "value" in options:
        for option in ("map", "default", "empty"):
            if option in options:
                doc.fail((*where, option), f"{option!r} has no effect on a literal 'value'")
        value = options["value"]
        as_typed = (convert or values.to_string) if explicit else None  # untyped: as written
        literal = _convert_literal(doc, (*where, "value"), value, as_typed)
        return CompiledField(
            key, where, None, readers.literal_reader(literal), kind if explicit else "literal", op
        )
    column = expect(doc, (*where, "column"), options["column"], str, "a column name")
    if not column:
        doc.fail((*where, "column"), "the column name is empty")
    empty = options.get("empty", "omit")
    if empty not in ("omit", "null"):
        doc.fail((*where, "empty"), f'expected "omit" or "null", got {empty!r}')
    if op != "set" and empty == "null":
        doc.fail((*where, "empty"), f'empty = "null" would unset the attribute: not with op {op!r}')
    if required and "empty" in options:
        doc.fail(
            (*where, "empty"), "'empty' does not apply: without this value the object is not sent"
        )
    on_empty = None if empty == "null" else OMIT
    if "default" in options and op != "set":
        doc.fail(
            (*where, "default"),
            f"'default' is not for op {op!r}: it would send the default as a change for every "
            "empty cell (and for 0); leave it out",
        )
    if "default" in options:
        default = options["default"]
        on_empty = _convert_literal(doc, (*where, "default"), default, convert or values.to_string)
    reader = readers.field_reader(
        label=dotted(where),
        column=column,
        convert=convert,
        nulls=nulls,
        remap=_remap(doc, (*where, "map"), options["map"]) if "map" in options else None,
        on_empty=on_empty,
        parse=parse,
    )
    return CompiledField(key, where, column, reader, kind, op)


def _operation(doc: MappingDoc, where: KeyPath, options: dict[str, Any]) -> str:
    op = expect(doc, (*where, "op"), options.get("op", "set"), str, "an operation name")
    if op not in values.OPERATIONS:
        hint = did_you_mean(op, values.OPERATIONS) or f" (ops: {', '.join(values.OPERATIONS)})"
        doc.fail((*where, "op"), f"unknown op {op!r}{hint}")
    return str(op)


def _attribute(doc: MappingDoc, where: KeyPath, options: dict[str, Any]) -> str:
    """The key the field writes: ``attribute = "NAME"``, else the field's own name."""
    if "attribute" not in options:
        return str(where[-1])
    name = expect(doc, (*where, "attribute"), options["attribute"], str, "an attribute name")
    if not name.strip():
        doc.fail((*where, "attribute"), "the attribute name is empty")
    return str(name)


def _options(
    doc: MappingDoc, where: KeyPath, spec: Any, allowed: tuple[str, ...]
) -> dict[str, Any]:
    if type(spec) is str:
        return {"column": spec}
    if type(spec) is not dict:
        doc.fail(
            where,
            f'expected a column name or a table such as {{ column = "Col", type = "integer" }}, '
            f"got {kind_of(spec)} (a literal is written {{ value = ... }})",
        )
    check_keys(doc, where, spec, allowed)
    if "column" in spec and "value" in spec:
        doc.fail(where, "both 'column' and 'value': give one of them")
    if "column" not in spec and "value" not in spec:
        wanted = "'column' or 'value'" if "value" in allowed else "'column'"
        doc.fail(where, f"no {wanted}: say where the value comes from")
    return spec


def _type(doc: MappingDoc, where: KeyPath, given: Any) -> str:
    if given is None:
        return "string"
    kind = expect(doc, (*where, "type"), given, str, "a type name")
    if kind not in TYPES:
        hint = did_you_mean(kind, TYPES) or f" (types: {', '.join(TYPES)})"
        doc.fail((*where, "type"), f"unknown type {kind!r}{hint}")
    return str(kind)


_Converters = tuple[ValueConverter | None, ValueConverter | None]


def _converter(doc: MappingDoc, where: KeyPath, kind: str, options: dict[str, Any]) -> _Converters:
    """The value converter of ``kind`` and its faster twin for text cells (None: the same)."""
    if kind == "integer":
        return values.to_integer, values.integer_text
    if kind == "float":
        return values.to_float, values.float_text
    if kind == "json":
        return values.to_json, None
    if kind == "boolean":
        true = _words(doc, (*where, "true"), options.get("true"), values.DEFAULT_TRUE)
        false = _words(doc, (*where, "false"), options.get("false"), values.DEFAULT_FALSE)
        both = {word.casefold() for word in true} & {word.casefold() for word in false}
        if both:
            doc.fail(where, f"{sorted(both)[0]!r} is listed as both true and false")
        return values.boolean_converter(true, false), values.boolean_text_parser(true, false)
    if kind == "array":
        separator = expect(doc, (*where, "separator"), options.get("separator", "|"), str)
        if not separator:
            doc.fail((*where, "separator"), "the separator is empty")
        return values.array_converter(separator), None
    given = options.get("format")
    if type(given) is str and given in time_formats.EPOCH_FORMATS:
        if "timezone" in options:
            doc.fail((*where, "timezone"), f"a Unix time (format {given!r}) is UTC: no timezone")
        if kind == "date":
            return time_formats.epoch_date_converter(given), None
        return time_formats.epoch_time_converter(given), None
    fmt = _format(doc, (*where, "format"), given)
    if kind == "date":
        return times.date_converter(fmt), times.date_parser(fmt)
    if kind == "time":
        zone = _zone(doc, (*where, "timezone"), options.get("timezone"))
        return times.time_converter(fmt, zone), times.time_parser(fmt, zone)
    return None, None  # string


def _words(
    doc: MappingDoc, where: KeyPath, given: Any, default: tuple[str, ...]
) -> tuple[str, ...]:
    if given is None:
        return default
    words = expect(doc, where, given, list, "an array of strings")
    if not words or any(type(word) is not str or not word.strip() for word in words):
        doc.fail(where, "expected a non-empty array of non-empty strings")
    return tuple(word.strip() for word in words)


def _format(doc: MappingDoc, where: KeyPath, given: Any) -> str | None:
    if given is None:
        return None
    fmt = expect(doc, where, given, str, 'a strptime format such as "%d.%m.%Y"')
    if "%" not in fmt:
        hint = did_you_mean(fmt, tuple(time_formats.EPOCH_FORMATS)) or (
            '; write e.g. "%Y-%m-%d" for 2024-05-31, or "epoch" / "epoch_ms" for Unix times'
        )
        doc.fail(where, f"format {fmt!r} has no strptime codes{hint}")
    try:
        dt.datetime.strptime("", fmt)
    except ValueError as exc:
        if "does not match" not in str(exc):
            doc.fail(where, f"bad strptime format {fmt!r}: {exc}")
    return str(fmt)


def _zone(doc: MappingDoc, where: KeyPath, given: Any) -> dt.tzinfo:
    if given is None:
        return dt.UTC
    name = expect(doc, where, given, str, 'a time zone name such as "Europe/Berlin"')
    if name in ("UTC", "Etc/UTC"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(name, zoneinfo.available_timezones())
        doc.fail(
            where,
            f"unknown time zone {name!r}{hint or ' (use an IANA name such as Europe/Berlin)'}",
        )


def _remap(doc: MappingDoc, where: KeyPath, given: Any) -> dict[str, Any]:
    table = expect(doc, where, given, dict)
    for key, value in table.items():
        if type(value) not in (str, int, float, bool):
            doc.fail((*where, key), f"expected a string, number or boolean, got {kind_of(value)}")
    return {key.strip(): value for key, value in table.items()}


def _plain(value: Any) -> Any:
    """A TOML literal as JSON would have it: dates and times become ISO 8601 text."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if type(value) is list:
        return [_plain(item) for item in value]
    if type(value) is dict:
        return {key: _plain(item) for key, item in value.items()}
    return value


def _finite(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_finite(item) for item in value)
    if type(value) is dict:
        return all(_finite(item) for item in value.values())
    return True


def _convert_literal(
    doc: MappingDoc, where: KeyPath, value: Any, convert: ValueConverter | None
) -> Any:
    """A ``value`` or ``default`` converted once, at load time; None: sent as written."""
    plain = _plain(value)
    if type(plain) in (list, dict) and json_depth(plain) > MAX_DEPTH:
        doc.fail(where, f"the literal is nested deeper than {MAX_DEPTH} levels")
    if not _finite(plain):  # TOML has nan and inf; JSON does not (they would go out as null)
        doc.fail(where, "the literal holds nan or inf, which JSON cannot carry")
    if convert is None:
        return plain
    try:
        result = convert(plain.strip() if type(plain) is str else plain)
    except RecordError as exc:
        doc.fail(where, exc.message)
    if result is OMIT:
        doc.fail(where, "the literal is empty")
    return result
