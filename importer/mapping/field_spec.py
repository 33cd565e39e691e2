"""One mapped field — a bare column name or a table of options — checked and compiled once.

Every mistake is reported through ``MappingDoc.fail`` with the key path, so the message names
the file, line, column and key (``attributes.points.colum: unknown key 'colum' — did you mean
'column'?``). The result is a ``CompiledField`` whose ``read(record)`` the converter calls per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.mapping import readers, values
from importer.mapping.document import KeyPath, MappingDoc, did_you_mean, dotted
from importer.mapping.field_converters import convert_literal, value_converters
from importer.mapping.readers import FieldReader
from importer.mapping.toml_checks import check_keys, expect, kind_of
from importer.mapping.values import OMIT, ValueConverter

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
    kind = _kind(doc, where, options, op, explicit)
    convert, parse = value_converters(doc, where, kind, options)
    if op != "set" and convert is not None:
        convert = values.as_operation(op, convert)
        parse = values.as_operation(op, parse) if parse is not None else None
    key = _attribute(doc, where, options)
    if "value" in options:
        as_typed = (convert or values.to_string) if explicit else None  # untyped: as written
        literal = _literal(doc, where, options, as_typed)
        return CompiledField(
            key, where, None, readers.literal_reader(literal), kind if explicit else "literal", op
        )
    column = expect(doc, (*where, "column"), options["column"], str, "a column name")
    if not column:
        doc.fail((*where, "column"), "the column name is empty")
    on_empty = _on_empty(doc, where, options, op, required, convert)
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


def _kind(doc: MappingDoc, where: KeyPath, options: dict[str, Any], op: str, explicit: Any) -> str:
    """The field's type (one of TYPES), checked against its op and the options given."""
    kind = _type(doc, where, explicit)
    if op != "set" and kind != values.OPERATION_TYPES[op]:
        wanted = values.OPERATION_TYPES[op]
        doc.fail((*where, "type"), f'op {op!r} needs type = "{wanted}", not {kind!r}')
    for option, types in _ONLY_FOR.items():
        if option in options and kind not in types:
            doc.fail((*where, option), f"{option!r} applies only to type {' or '.join(types)}")
    return kind


def _literal(
    doc: MappingDoc, where: KeyPath, options: dict[str, Any], convert: ValueConverter | None
) -> Any:
    """A literal ``value``, converted once; the options about cells have no effect on it."""
    for option in ("map", "default", "empty"):
        if option in options:
            doc.fail((*where, option), f"{option!r} has no effect on a literal 'value'")
    return convert_literal(doc, (*where, "value"), options["value"], convert)


def _on_empty(
    doc: MappingDoc,
    where: KeyPath,
    options: dict[str, Any],
    op: str,
    required: bool,
    convert: ValueConverter | None,
) -> Any:
    """What an empty cell sends: nothing (OMIT), null (``empty = "null"``) or the ``default``."""
    empty = options.get("empty", "omit")
    if empty not in ("omit", "null"):
        doc.fail((*where, "empty"), f'expected "omit" or "null", got {empty!r}')
    if op != "set" and empty == "null":
        doc.fail((*where, "empty"), f'empty = "null" would unset the attribute: not with op {op!r}')
    if required and "empty" in options:
        doc.fail(
            (*where, "empty"), "'empty' does not apply: without this value the object is not sent"
        )
    if "default" not in options:
        return None if empty == "null" else OMIT
    if op != "set":
        doc.fail(
            (*where, "default"),
            f"'default' is not for op {op!r}: it would send the default as a change for every "
            "empty cell (and for 0); leave it out",
        )
    return convert_literal(
        doc, (*where, "default"), options["default"], convert or values.to_string
    )


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


def _remap(doc: MappingDoc, where: KeyPath, given: Any) -> dict[str, Any]:
    table = expect(doc, where, given, dict)
    for key, value in table.items():
        if type(value) not in (str, int, float, bool):
            doc.fail((*where, key), f"expected a string, number or boolean, got {kind_of(value)}")
    return {key.strip(): value for key, value in table.items()}
