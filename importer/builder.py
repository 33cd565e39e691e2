"""Mapped fields as plans, and the builders of a row's objects made from them.

A field's plan is a flat tuple; importer.fieldcode turns a list of plans into one generated
function, so the common case — a text cell — is trimmed, tested against ``null_values`` and
parsed inline, with no call and no case analysis per field; everything else (typed JSONL values,
missing keys, dotted paths, ``map``) goes to the field's own reader, and a literal is its value.
"""

from __future__ import annotations

from collections.abc import Iterable

from importer.checks import Checks, FieldValues, object_checks, properties_check
from importer.fieldcode import NO_COLUMN, Build, Fill, Plan, make_build, make_fill
from importer.fields import ColumnReader, FieldReader, LiteralReader
from importer.fieldspec import CompiledField
from importer.mapping import ObjectSpec
from importer.values import OMIT

_NO_NULLS: frozenset[str] = frozenset()


def plan(item: CompiledField) -> Plan:
    read = item.read
    if isinstance(read, LiteralReader):
        return (item.key, NO_COLUMN, _NO_NULLS, None, read.value, None, "")
    if isinstance(read, ColumnReader) and not read.remapped:
        nulls = read.nulls - {""}
        return (item.key, read.column, nulls, read.parse, read.on_empty, read.read, read.label)
    return (item.key, NO_COLUMN, _NO_NULLS, None, OMIT, read, "")


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


def filler(items: Iterable[CompiledField]) -> Fill:
    """``fill(obj, record)`` for these fields (see importer.fieldcode)."""
    return make_fill(tuple(plan(item) for item in items))


class ObjectBuilder:
    """An event or purchase spec as a generated builder and the checks its values need."""

    __slots__ = ("build", "checks")

    def __init__(self, spec: ObjectSpec) -> None:
        # build(record, base): the object for this row, or None when a required column is
        # empty (then a value of it that could not be converted does not matter).
        self.build: Build = make_build(
            tuple(plan(item) for item in spec.required),
            tuple(plan(item) for item in spec.optional),
            tuple(plan(item) for item in spec.properties),
        )
        fields = (*spec.required, *spec.optional)
        checks = object_checks(spec.array, (values_of(item) for item in fields))
        extra = properties_check(spec.array, (values_of(p) for p in spec.properties))
        self.checks: Checks = (*checks, extra) if extra is not None else checks
