"""The tables that write a user's attributes: ``[attributes]`` (one field per attribute),
``[[subscription_groups]]`` and the ``[operations]`` key that names a row's operations.

Each is checked as ``importer.mapping.load`` meets it; a mistake names file, line, column and key.
"""

from __future__ import annotations

from typing import Any

from importer.mapping.compiled import GroupSpec
from importer.mapping.document import KeyPath, MappingDoc, dotted
from importer.mapping.field_spec import ATTRIBUTE_OPTIONS, CompiledField, compile_field
from importer.mapping.toml_checks import check_keys, expect, expect_table

_GROUP_KEYS = ("id", "state", "double_opt_in")
_GROUP_STATES = ("subscribed", "unsubscribed")
_NOT_ATTRIBUTES = ("external_id", "braze_id", "user_alias", "_update_existing_only")
# Flags that steer how Braze applies the whole object: a field may be named so, but no field
# writes one under another name (``attribute =``).
_STEERING = ("_merge_objects", "push_token_import")


def attribute_fields(
    doc: MappingDoc, value: Any, identity_key: str, nulls: frozenset[str]
) -> tuple[CompiledField, ...]:
    table = expect_table(doc, ("attributes",), value)
    compiled = []
    for name, spec in table.items():
        item = compile_field(
            doc, ("attributes", name), spec, nulls=nulls, allowed=ATTRIBUTE_OPTIONS
        )
        # The key written, not the table key: attribute = "external_id" would move the row's
        # values to another profile.
        at = ("attributes", name) if item.key == name else ("attributes", name, "attribute")
        if item.key in _NOT_ATTRIBUTES or item.key == identity_key:
            doc.fail(at, f"{item.key!r} is set by [identity], not as an attribute")
        if item.key in _STEERING and item.key != name:
            doc.fail(at, f"{item.key!r} steers how Braze applies the object: not an attribute")
        compiled.append(item)
    _check_shared_attributes(doc, compiled)
    return tuple(compiled)


def _check_shared_attributes(doc: MappingDoc, fields: list[CompiledField]) -> None:
    """Two fields may write one attribute only as one ``add`` and one ``remove`` (they combine
    into one value); ``merge`` marks the whole object ``_merge_objects``, so a plain ``json``
    field beside it would be merged too (docs/braze.md, Operations on attributes)."""
    first: dict[str, CompiledField] = {}
    for item in fields:
        earlier = first.setdefault(item.key, item)
        if earlier is item:
            continue
        if {earlier.op, item.op} != {"add", "remove"}:
            doc.fail(
                item.where,
                f"attribute {item.key!r} is already written by {dotted(earlier.where)}; two "
                f'fields share one attribute only as op = "add" and op = "remove"',
            )
    merged = next((item for item in fields if item.op == "merge"), None)
    if merged is None:
        return
    for item in fields:
        literal = item.column is None and type(item.read({})) is dict
        if item.op == "set" and (item.kind == "json" or literal):
            doc.fail(
                item.where,
                f"{dotted(merged.where)} merges objects (_merge_objects: true applies to the whole "
                f'attributes object), so this object would be merged too: give it op = "merge" '
                f"or send it in another run",
            )


def subscription_groups(
    doc: MappingDoc, value: Any, nulls: frozenset[str]
) -> tuple[GroupSpec, ...]:
    """``[[subscription_groups]]``: ``id`` a literal or a column, ``state`` a column (with
    ``map``) that ends as subscribed / unsubscribed, ``double_opt_in`` a flag."""
    if type(value) is dict:
        doc.fail(
            ("subscription_groups",), "write [[subscription_groups]], not [subscription_groups]"
        )
    entries = expect(doc, ("subscription_groups",), value, list, "[[subscription_groups]] tables")
    groups = []
    for index, entry in enumerate(entries):
        where: KeyPath = ("subscription_groups", index)
        table = expect_table(doc, where, entry)
        check_keys(doc, where, table, _GROUP_KEYS)
        for key in ("id", "state"):
            if key not in table:
                doc.fail(where, f"missing {key!r} (each subscription group needs id and state)")
        ident = compile_field(
            doc, (*where, "id"), table["id"], nulls=nulls, allowed=("column", "value", "map")
        )
        if ident.column is None and not str(ident.read({})).strip():
            doc.fail((*where, "id", "value"), "the subscription group id is empty")
        state = compile_field(
            doc, (*where, "state"), table["state"], nulls=nulls, allowed=("column", "map")
        )
        mapped = table["state"].get("map", {}) if type(table["state"]) is dict else {}
        for text, to in mapped.items():
            if to not in (*_GROUP_STATES, ""):
                doc.fail(
                    (*where, "state", "map", text),
                    f'expected "subscribed", "unsubscribed" or "" (send nothing), got {to!r}',
                )
        double = table.get("double_opt_in", False)
        expect(doc, (*where, "double_opt_in"), double, bool)
        groups.append(GroupSpec(where, ident, state, double))
    return tuple(groups)


def operations_key(
    doc: MappingDoc, value: Any, attributes: tuple[CompiledField, ...], nulls: frozenset[str]
) -> CompiledField | None:
    """``[operations] key = "Column"``: what names a row's operations for --state."""
    if value is None:
        return None
    table = expect_table(doc, ("operations",), value)
    check_keys(doc, ("operations",), table, ("key",))
    if "key" not in table:
        doc.fail(("operations",), "missing 'key': [operations] key = \"TransactionIdColumn\"")
    if not any(item.op != "set" for item in attributes):
        doc.fail(
            ("operations", "key"), "no attribute sends an operation (op = inc/add/remove/merge)"
        )
    return compile_field(doc, ("operations", "key"), table["key"], nulls=nulls, allowed=("column",))
