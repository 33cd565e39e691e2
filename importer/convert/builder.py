"""A mapping's fields -> the generated code that builds a row's objects from them (``RowCode``,
``row_function``).

A field's plan (importer.convert.field_plans) is a flat tuple; importer.convert.codegen turns a
list of plans into one generated function, so the common case — a text cell — is trimmed, tested
against ``null_values`` and parsed inline, with no call and no case analysis per field; everything
else (typed JSONL values, missing keys, dotted paths, ``map``) goes to the field's own reader, and
a literal is its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from importer.convert.checks import (
    FieldCheck,
    FieldValues,
    ObjectCheck,
    compiled,
    field_check,
    object_checks,
    properties_check,
    property_guards,
)
from importer.convert.codegen import Build, Fill, GroupEntry, Read, make_build, make_fill, make_read
from importer.convert.field_plans import COMBINE, FieldPlan, attribute_plans, field_plan
from importer.convert.generated import Columns, GeneratedSource
from importer.errors import RecordError
from importer.mapping import (
    OMIT,
    ColumnReader,
    CompiledField,
    CompiledMapping,
    GroupSpec,
    LiteralReader,
    ObjectSpec,
    show,
)
from importer.models import CsvRecord, Item, RowRef

RowFunction = Callable[[RowRef, CsvRecord, list[str]], Item | None]


def group_entry(group: GroupSpec) -> GroupEntry:
    """The entry of one subscription group for a row, from the id and the state read; a state
    other than subscribed / unsubscribed, or no id, fails the record naming group and value."""
    label = group.label
    double = group.double_opt_in

    def entry(ident: Any, state: Any) -> dict[str, Any]:
        if state != "subscribed" and state != "unsubscribed":
            raise RecordError(
                "invalid_subscription_state",
                f"{label} (group {show(ident)}): {show(state)} is neither subscribed nor "
                f"unsubscribed; map it with state.map",
            )
        if ident is OMIT or ident is None or type(ident) is not str:
            raise RecordError(
                "missing_subscription_group",
                f"{label}: the group id (column {group.id.column!r}) is empty for state {state!r}",
            )
        made = {"subscription_group_id": ident, "subscription_state": state}
        if double and state == "subscribed":  # Braze's double opt-in applies to subscribing
            made["use_double_opt_in_logic"] = True
        return made

    return entry


def values_of(item: CompiledField) -> FieldValues:
    """What the field can produce, for importer.convert.checks."""
    read = item.read
    if item.op != "set":  # an operation: an object, checked whatever it holds
        return FieldValues(item.key, "json")
    if isinstance(read, LiteralReader):
        return FieldValues(item.key, "literal", (read.value,))
    if isinstance(read, ColumnReader):
        fixed = () if read.on_empty is OMIT else (read.on_empty,)
        return FieldValues(item.key, item.kind, fixed)
    return FieldValues(item.key, "json")  # an unknown reader: anything


@dataclass(frozen=True, slots=True)
class RowCode:
    """A mapping's generated functions for one shape of record (see importer.convert.codegen):
    the identifier's reader, the attributes filler and the checks left for its object, and each
    event's / purchase's builder with the checks left for it (importer.convert.checks.compiled;
    None: none can fail). Fused code (``row_code(..., fused=True)``) checks each value a cell
    gives where it sets it and raises Suspect when one fails; only literals, combined
    operations and the subscription groups are left for the object's check."""

    identity: Read | None
    attributes: Fill
    attributes_check: ObjectCheck | None
    events: tuple[tuple[Build, ObjectCheck | None], ...]
    purchases: tuple[tuple[Build, ObjectCheck | None], ...]
    operations: Read | None = None  # the ``[operations] key`` reader


def row_code(
    mapping: CompiledMapping, columns: Columns | None = None, fused: bool = False
) -> RowCode:
    """The code over record dicts, or with ``columns`` over a CSV row's cells (NotPlain when
    some field is not a literal or a plain column of that header); ``fused``: with the checks
    fused into it."""
    identity = mapping.identity
    plans = attribute_plans(mapping.attributes)
    guards = tuple(
        _guard("attributes", item) if fused and plan[8] != COMBINE else None
        for item, plan in zip(mapping.attributes, plans, strict=True)
    )
    groups = (FieldValues("subscription_groups", "json"),) if mapping.subscription_groups else ()
    left = object_checks(
        "attributes",
        (
            *(
                values_of(item)
                for item, guard in zip(mapping.attributes, guards, strict=True)
                if guard is None
            ),
            *groups,
        ),
    )
    return RowCode(
        identity=None if identity is None else make_read(field_plan(identity.field), columns),
        attributes=make_fill(
            plans,
            columns,
            tuple(
                (field_plan(group.id), field_plan(group.state), group_entry(group))
                for group in mapping.subscription_groups
            ),
            guards,
        ),
        attributes_check=compiled(left) if left else None,
        events=tuple(_builder(spec, columns, fused) for spec in mapping.events),
        purchases=tuple(_builder(spec, columns, fused) for spec in mapping.purchases),
        operations=None
        if mapping.operations_key is None
        else make_read(field_plan(mapping.operations_key), columns),
    )


def _guard(array: str, item: CompiledField) -> FieldCheck | None:
    """The check fused where the code sets ``item``'s value: any non-literal field's (a literal
    is one value, checked once, in the object's check)."""
    if isinstance(item.read, LiteralReader):
        return None
    return field_check(array, values_of(item))


def _plans(items: Iterable[CompiledField]) -> tuple[FieldPlan, ...]:
    return tuple(field_plan(item) for item in items)


def _builder(
    spec: ObjectSpec, columns: Columns | None, fused: bool
) -> tuple[Build, ObjectCheck | None]:
    """build(data, base): the object for this row, or None when a required column is empty
    (then a value of it that could not be converted does not matter); and the checks left."""
    fields = (*spec.required, *spec.optional)
    guards = tuple(_guard(spec.array, item) if fused else None for item in fields)
    fixed = tuple(isinstance(item.read, LiteralReader) for item in spec.properties)
    values = tuple(values_of(p) for p in spec.properties)
    per_property = property_guards(spec.array, values, (not f for f in fixed)) if fused else None
    build = make_build(
        _plans(spec.required),
        _plans(spec.optional),
        _plans(spec.properties),
        columns,
        (guards[: len(spec.required)], guards[len(spec.required) :], per_property or ()),
    )
    left = object_checks(
        spec.array,
        (values_of(item) for item, guard in zip(fields, guards, strict=True) if guard is None),
    )
    extra = None if per_property is not None else properties_check(spec.array, values)
    kept = (*left, extra) if extra is not None else left
    return build, compiled(kept) if kept else None


# Item's fields after the six a converted row sets (digests, wire, operations, row_key): their
# defaults.
_ITEM_REST = tuple(Item._field_defaults[name] for name in Item._fields[6:])
_FIELDS = ("ref", "record", "user", "attributes", "events", "purchases", "digests", "wire")
assert Item._fields == (*_FIELDS, "operations", "row_key")


def row_function(
    code: RowCode,
    base: tuple[tuple[str, Any], ...],
    prefix: str,
    id_text: tuple[int, int],
    attributes: bool,
    wire: bool = False,
) -> RowFunction:
    """row(ref, record, cells): a CSV row's whole conversion as ``Converter.convert`` does it,
    in one generated call with the events and purchases unrolled, or None for a row it leaves
    to that general code: an identifier empty or of a length its check must look at, an
    object its kept checks refuse, nothing to send. A value that fails raises as there
    (RecordError, Suspect). ``base``: the keys every object starts with after the identifier
    (its key first); ``prefix``: the user key's; ``id_text``: lengths that pass unchecked;
    ``attributes``: whether the mapping makes an attributes object; ``wire``: the Item carries
    its objects as JSON only (``Item.wire``), each serialised as soon as it is checked, so its
    dict is freed at once (the packer needs bytes; see ``Converter``)."""
    source = GeneratedSource({})
    add, value = source.add, source.value
    keep = value(orjson.dumps) + "(" if wire else "("
    add(1, f"ident = {value(code.identity)}(cells)")
    shortest, longest = id_text
    add(1, f"if ident.__class__ is not str or not {shortest} <= len(ident) <= {longest}:")
    add(2, "return None")
    keys = [value(key) for key, _ in base]
    pairs = ", ".join(f"{k}: {value(v)}" for k, (_, v) in zip(keys[1:], base[1:], strict=True))
    add(1, f"base = {{{keys[0]}: ident{', ' if pairs else ''}{pairs}}}")
    add(1, "attributes = ()")
    if attributes:
        add(1, f"obj = {value(code.attributes)}(base.copy(), cells)")
        add(1, f"if len(obj) > {len(base)}:")
        if code.attributes_check is not None:
            add(2, f"if {value(code.attributes_check)}(obj) is not None:")
            add(3, "return None")
        add(2, f"attributes = ({keep}obj),)")
    for name, builders in (("events", code.events), ("purchases", code.purchases)):
        add(1, f"{name} = ()")
        for build, check in builders:
            add(1, f"built = {value(build)}(cells, base)")
            add(1, "if built is not None:")
            if check is not None:
                add(2, f"if {value(check)}(built) is not None:")
                add(3, "return None")
            add(2, f"{name} += ({keep}built),)")
    add(1, "if not (attributes or events or purchases):")
    add(2, "return None")
    user = f"{value(prefix)} + ident"
    if wire:
        fields = (
            f"ref, record, {user}, (), (), (), None, (attributes, events, purchases), None, None"
        )
    else:
        fields = f"ref, record, {user}, attributes, events, purchases, *{value(_ITEM_REST)}"
    add(1, f"return {value(tuple.__new__)}({value(Item)}, ({fields}))")
    made: RowFunction = source.function("row", "ref, record, cells")
    return made
