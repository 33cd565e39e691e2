"""What a mapping file compiles to: ``CompiledMapping`` and its parts, ready for the converter.

Built by ``importer.mapping.load``; every field is a ``CompiledField`` whose reader already knows
its column, type and options.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from importer.mapping.document import KeyPath, MappingDoc, did_you_mean, dotted
from importer.mapping.field_spec import CompiledField
from importer.mapping.readers import LiteralReader
from importer.models import ArrayName


@dataclass(frozen=True, slots=True)
class InputSettings:
    """The ``[input]`` table; None means "not given" (the CLI or the reader decides)."""

    format: Literal["csv", "jsonl"] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    null_values: tuple[str, ...] | None = None
    max_cell_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    key: str  # external_id | braze_id | email | phone | user_alias
    field: CompiledField  # the identifier (for user_alias: the alias name)
    alias_label: str | None = None
    update_existing_only: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One ``[[events]]`` or ``[[purchases]]`` entry."""

    array: ArrayName
    where: KeyPath
    required: tuple[CompiledField, ...]  # all non-empty, or this row has no such object
    optional: tuple[CompiledField, ...]
    properties: tuple[CompiledField, ...]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One ``[[subscription_groups]]`` entry: per row, the group id and its state (an empty
    state sends nothing for the group)."""

    where: KeyPath
    id: CompiledField
    state: CompiledField
    double_opt_in: bool = False

    @property
    def label(self) -> str:
        """How messages name the group's table: ``subscription_groups[0]``."""
        return dotted(self.where)


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    path: str | None
    input: InputSettings
    identity: Identity | None  # None: JSONL without a mapping, objects taken as they are
    attributes: tuple[CompiledField, ...] = ()
    events: tuple[ObjectSpec, ...] = ()
    purchases: tuple[ObjectSpec, ...] = ()
    text: str = field(default="", repr=False)  # the TOML, to place header errors
    subscription_groups: tuple[GroupSpec, ...] = ()
    # ``[operations] key``: the column naming a row's operations (--state remembers them by it)
    operations_key: CompiledField | None = None

    @property
    def has_operations(self) -> bool:
        """Does some attribute field send an operation (inc, add, remove, merge)?"""
        return any(item.op != "set" for item in self.attributes)

    @property
    def may_carry_operations(self) -> bool:
        """Can a row's attributes object hold an operation? A declared ``op``, or a field whose
        value is a JSON object: ``{"inc": 5}`` in a json cell, or in a literal, is Braze's
        increment as much as ``op = "inc"`` is (docs/braze.md, Operations on attributes)."""
        return self.has_operations or any(
            item.kind == "json"
            or (isinstance(item.read, LiteralReader) and isinstance(item.read.value, dict))
            for item in self.attributes
        )

    def fields(self) -> Iterator[CompiledField]:
        if self.identity is not None:
            yield self.identity.field
        yield from self.attributes
        for group in self.subscription_groups:
            yield from (group.id, group.state)
        if self.operations_key is not None:
            yield self.operations_key
        for spec in (*self.events, *self.purchases):
            yield from (*spec.required, *spec.optional, *spec.properties)

    def columns(self) -> frozenset[str]:
        """Every column the mapping reads; a dotted ``a.b`` also contributes ``a`` (JSONL)."""
        names = {item.column for item in self.fields() if item.column is not None}
        return frozenset(names | {name.split(".", 1)[0] for name in names})

    def check_header(self, header: Sequence[str], source: str) -> None:
        """Raise MappingError if a column the mapping reads is not in ``header``."""
        if not header:
            return  # an empty file: no header to check, and no rows to read either
        present = set(header)
        missing: dict[str, CompiledField] = {}
        for item in self.fields():
            if item.column is not None and item.column not in present:
                missing.setdefault(item.column, item)
        if not missing:
            return
        column, item = next(iter(missing.items()))
        others = [repr(name) for name in missing][1:]
        also = f"; also missing: {', '.join(others)}" if others else ""
        doc = MappingDoc(self.path or source, self.text)
        doc.fail(
            item.where,
            f"column {column!r} is not in the header of {source}{did_you_mean(column, present)}"
            f"{also}; the header has: {', '.join(header) or '(nothing)'}",
        )
