"""Mapped fields as plans the converter unpacks per row, and the builder of events and purchases.

The inner loop of the import: ~15 fields per row. A field's plan is a flat tuple, so the common
case — a text cell — is trimmed, tested against ``null_values`` and parsed inline, with no call
per field; everything else (typed JSONL values, missing keys, dotted paths, ``map``) goes to the
field's own reader, and a literal is its value.
"""

from __future__ import annotations

from typing import Any

from importer.checks import Checks, FieldValues, object_checks, properties_check
from importer.errors import RecordError
from importer.fields import ColumnReader, FieldReader, LiteralReader, Record
from importer.fieldspec import CompiledField
from importer.mapping import ObjectSpec
from importer.models import BrazeObject
from importer.values import OMIT

# A key no record has: ``record.get(_NO_COLUMN)`` is None, so the field takes its reader (or,
# for a literal, its value) instead of the inline text path.
_NO_COLUMN: Any = object()
_NO_NULLS: frozenset[str] = frozenset()

# One field, unpacked per row: (key, column, nulls, parse, on_empty, read, label). For a text
# cell the converter trims it, tests it for emptiness and ``nulls`` and applies ``parse`` itself;
# ``read`` handles every other value (None: a literal, whose value is ``on_empty``). ``nulls``
# holds the ``null_values`` besides "", usually none: a fresh cell is then never hashed.
Plan = tuple[str, Any, frozenset[str], Any, Any, FieldReader | None, str]


def plan(item: CompiledField) -> Plan:
    read = item.read
    if isinstance(read, LiteralReader):
        return (item.key, _NO_COLUMN, _NO_NULLS, None, read.value, None, "")
    if isinstance(read, ColumnReader) and not read.remapped:
        nulls = read.nulls - {""}
        return (item.key, read.column, nulls, read.parse, read.on_empty, read.read, read.label)
    return (item.key, _NO_COLUMN, _NO_NULLS, None, OMIT, read, "")


def direct(read: FieldReader) -> FieldReader:
    """The closure inside a ColumnReader (one call per row less), or the reader itself."""
    return read.read if isinstance(read, ColumnReader) else read


def values_of(item: CompiledField) -> FieldValues:
    """What the field can produce, for importer.checks."""
    read = item.read
    if isinstance(read, LiteralReader):
        return FieldValues(item.key, "literal", (read.value,))
    if isinstance(read, ColumnReader):
        fixed = () if read.on_empty is OMIT else (read.on_empty,)
        return FieldValues(item.key, item.kind, fixed)
    return FieldValues(item.key, "json")  # an unknown reader: anything


def fill(obj: BrazeObject, plans: tuple[Plan, ...], record: Record) -> BrazeObject:
    """Set each field that has a value in ``obj``; a value that cannot be converted raises."""
    get = record.get
    for key, column, nulls, parse, on_empty, read, label in plans:
        raw = get(column)
        if raw.__class__ is str:
            raw = raw.strip()
            if not raw or (nulls and raw in nulls):
                value = on_empty
            elif parse is None:
                obj[key] = raw
                continue
            else:
                try:
                    value = parse(raw)
                except RecordError as exc:
                    raise RecordError(exc.code, f"{label}: {exc.message}") from None
                if value is OMIT:
                    value = on_empty
        elif read is not None:
            value = read(record)
        else:
            value = on_empty
        if value is not OMIT:
            obj[key] = value
    return obj


class ObjectBuilder:
    """An event or purchase spec as field plans and the checks its values need."""

    __slots__ = ("checks", "optional", "properties", "required")

    def __init__(self, spec: ObjectSpec) -> None:
        self.required = tuple(plan(item) for item in spec.required)
        self.optional = tuple(plan(item) for item in spec.optional)
        self.properties = tuple(plan(item) for item in spec.properties)
        fields = (*spec.required, *spec.optional)
        checks = object_checks(spec.array, (values_of(item) for item in fields))
        extra = properties_check(spec.array, (values_of(p) for p in spec.properties))
        self.checks: Checks = (*checks, extra) if extra is not None else checks

    def build(self, record: Record, base: BrazeObject) -> BrazeObject | None:
        """The object for this row, or None when a required column is empty (then a value of
        it that could not be converted does not matter)."""
        obj = base.copy()
        get = record.get
        error: RecordError | None = None
        for key, column, nulls, parse, on_empty, read, label in self.required:
            raw = get(column)
            try:
                if raw.__class__ is str:
                    raw = raw.strip()
                    if not raw or (nulls and raw in nulls):
                        value = on_empty
                    elif parse is None:
                        value = raw
                    else:
                        try:
                            value = parse(raw)
                        except RecordError as exc:
                            raise RecordError(exc.code, f"{label}: {exc.message}") from None
                        if value is OMIT:
                            value = on_empty
                elif read is not None:
                    value = read(record)
                else:
                    value = on_empty
            except RecordError as exc:  # only fatal if the object is emitted at all
                error = error or exc
                continue
            if value is OMIT or value is None:
                return None
            obj[key] = value
        if error is not None:
            raise error
        if self.optional:
            fill(obj, self.optional, record)
        if self.properties:
            properties = fill({}, self.properties, record)
            if properties:
                obj["properties"] = properties
        return obj
