"""The mapping file (TOML) -> a ``CompiledMapping``: identity, attributes, events, purchases.

Every problem is a ``MappingError`` naming the file, line, column and key, raised before anything
is read or sent: TOML syntax (tomllib's position), unknown keys (with "did you mean"), wrong value
types, unknown types or time zones, bad strptime formats, no or two identities, and — once the
header is known — columns missing from it (``CompiledMapping.check_header``, in
``importer.mapping.compiled``).

A bare string names a column (JSONL: a key; ``a.b`` walks into nested objects); a literal is
``{ value = ... }``. Without ``--mapping``, ``default_mapping`` builds one from the CSV header, or
(JSONL) a mapping with ``identity`` None: each line is then taken as Braze objects as it is.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from importer.errors import MappingError
from importer.mapping.compiled import (
    CompiledMapping,
    GroupSpec,
    Identity,
    InputSettings,
    ObjectSpec,
)
from importer.mapping.document import KeyPath, MappingDoc, dotted
from importer.mapping.field_spec import (
    ATTRIBUTE_OPTIONS,
    IDENTITY_OPTIONS,
    CompiledField,
    compile_field,
)
from importer.mapping.readers import OMIT, field_reader
from importer.mapping.toml_checks import check_keys, expect
from importer.models import ArrayName
from importer.read import MAX_CELL_BYTES_LIMIT

IDENTIFIERS = ("external_id", "braze_id", "email", "phone")  # also the default-mapping priority
_TOP_KEYS = (
    *("input", "identity", "attributes", "subscription_groups", "operations"),
    *("events", "purchases"),
)
_GROUP_KEYS = ("id", "state", "double_opt_in")
_GROUP_STATES = ("subscribed", "unsubscribed")
_INPUT_KEYS = ("format", "encoding", "delimiter", "null_values", "max_cell_bytes")
_IDENTITY_KEYS = (*IDENTIFIERS, "user_alias", "update_existing_only")
# Keys of one event / purchase -> their type when none is given (None: string).
_OBJECT_KEYS: dict[str, dict[str, str | None]] = {
    "events": {"name": None, "time": "time", "app_id": None},
    "purchases": {
        **{"product_id": None, "currency": None, "price": "float", "quantity": "integer"},
        **{"time": "time", "app_id": None},
    },
}
_REQUIRED = {"events": ("name", "time"), "purchases": ("product_id", "currency", "price", "time")}
_RESERVED_PROPERTIES = {
    "events": ("time", "event_name"),
    "purchases": ("time", "product_id", "quantity", "event_name", "price", "currency"),
}
_NOT_ATTRIBUTES = ("external_id", "braze_id", "user_alias", "_update_existing_only")
# Flags that steer how Braze applies the whole object: a field may be named so, but no field
# writes one under another name (``attribute =``).
_STEERING = ("_merge_objects", "push_token_import")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_mapping(path: Path) -> CompiledMapping:
    """Read and compile a mapping file. The one seam where OSError, UnicodeDecodeError,
    tomllib.TOMLDecodeError and RecursionError (absurd nesting) become MappingError."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(
            f"cannot read the mapping file: {exc.strerror or exc}", path=name
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MappingError("the mapping file is not UTF-8 text", path=name, line=line) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        line, column = (int(found[1]), int(found[2])) if found else (0, 0)
        reason = _TOML_POSITION.sub("", message)
        raise MappingError(f"invalid TOML: {reason}", path=name, line=line, column=column) from None
    except RecursionError:
        raise MappingError("invalid TOML: arrays or tables nested too deeply", path=name) from None
    return compile_mapping(MappingDoc(name, text), document)


def mapping_from_text(path: str, text: str) -> CompiledMapping:
    """Compile again, from its text, a mapping ``load_mapping`` already accepted: how a worker
    process gets the very mapping the main process checked (the file may have changed since)."""
    return compile_mapping(MappingDoc(path, text), tomllib.loads(text))


def compile_mapping(doc: MappingDoc, document: dict[str, Any]) -> CompiledMapping:
    check_keys(doc, (), document, _TOP_KEYS)
    settings = _input(doc, document.get("input", {}))
    nulls = frozenset(("", *(settings.null_values or ())))
    identity = _identity(doc, document.get("identity"), nulls)
    attributes = _attributes(doc, document.get("attributes", {}), identity.key, nulls)
    groups = _groups(doc, document.get("subscription_groups", []), nulls)
    if groups and any(item.key == "subscription_groups" for item in attributes):
        doc.fail(
            ("attributes", "subscription_groups"),
            "subscription_groups is set by [[subscription_groups]] tables: keep one of the two",
        )
    key = _operations(doc, document.get("operations"), attributes, nulls)
    events = _objects(doc, "events", document.get("events", []), nulls)
    purchases = _objects(doc, "purchases", document.get("purchases", []), nulls)
    if not (attributes or groups or events or purchases):
        doc.fail(
            (),
            "the mapping sends nothing: add [attributes], [[subscription_groups]], [[events]] "
            "or [[purchases]]",
        )
    return CompiledMapping(
        doc.path, settings, identity, attributes, events, purchases, doc.text, groups, key
    )


def _table(doc: MappingDoc, where: KeyPath, value: Any) -> dict[str, Any]:
    return dict(expect(doc, where, value, dict))


def _input(doc: MappingDoc, value: Any) -> InputSettings:
    table = _table(doc, ("input",), value)
    check_keys(doc, ("input",), table, _INPUT_KEYS)
    fmt = table.get("format")
    if fmt is not None and fmt not in ("csv", "jsonl"):
        doc.fail(("input", "format"), f'expected "csv" or "jsonl", got {fmt!r}')
    encoding = table.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(expect(doc, ("input", "encoding"), encoding, str))
        except LookupError:
            doc.fail(("input", "encoding"), f"unknown encoding {encoding!r}")
    delimiter = table.get("delimiter")
    if delimiter is not None and (type(delimiter) is not str or len(delimiter) != 1):
        doc.fail(("input", "delimiter"), f"expected one character, got {delimiter!r}")
    nulls = table.get("null_values")
    if nulls is not None:
        expect(doc, ("input", "null_values"), nulls, list, "an array of strings")
        for index, item in enumerate(nulls):
            expect(doc, ("input", "null_values", index), item, str)
    size = table.get("max_cell_bytes")
    where: KeyPath = ("input", "max_cell_bytes")
    if size is not None and not 1 <= expect(doc, where, size, int) <= MAX_CELL_BYTES_LIMIT:
        limit = f"{MAX_CELL_BYTES_LIMIT} (1 GiB)"
        doc.fail(where, f"expected a positive number of bytes up to {limit}, got {size}")
    return InputSettings(fmt, encoding, delimiter, tuple(nulls) if nulls else None, size)


def _identity(doc: MappingDoc, value: Any, nulls: frozenset[str]) -> Identity:
    choices = "external_id, braze_id, email, phone or user_alias"
    if value is None:
        doc.fail(("identity",), f"missing [identity]: name exactly one of {choices}")
    table = _table(doc, ("identity",), value)
    check_keys(doc, ("identity",), table, _IDENTITY_KEYS)
    given = [key for key in (*IDENTIFIERS, "user_alias") if key in table]
    if not given:
        doc.fail(("identity",), f"no identifier: name exactly one of {choices}")
    if len(given) > 1:
        doc.fail(
            ("identity", given[1]), f"two identifiers, {given[0]!r} and {given[1]!r}: keep one"
        )
    key, label = given[0], None
    where: KeyPath = ("identity", key)
    spec = table[key]
    if key == "user_alias":
        alias = _table(doc, where, spec)
        check_keys(doc, where, alias, ("name", "label"))
        for part in ("name", "label"):
            if part not in alias:
                doc.fail(
                    where, f'missing {part!r}: user_alias = {{ name = "Column", label = "text" }}'
                )
        label = expect(doc, (*where, "label"), alias["label"], str, "a literal label")
        if not label.strip():
            doc.fail((*where, "label"), "the alias label is empty")
        where, spec = (*where, "name"), alias["name"]
    ident = compile_field(doc, where, spec, nulls=nulls, allowed=IDENTITY_OPTIONS)
    only = table.get("update_existing_only")
    if only is not None:
        expect(doc, ("identity", "update_existing_only"), only, bool)
    return Identity(key, ident, label, only)


def _attributes(
    doc: MappingDoc, value: Any, identity_key: str, nulls: frozenset[str]
) -> tuple[CompiledField, ...]:
    table = _table(doc, ("attributes",), value)
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


def _groups(doc: MappingDoc, value: Any, nulls: frozenset[str]) -> tuple[GroupSpec, ...]:
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
        table = _table(doc, where, entry)
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


def _operations(
    doc: MappingDoc, value: Any, attributes: tuple[CompiledField, ...], nulls: frozenset[str]
) -> CompiledField | None:
    """``[operations] key = "Column"``: what names a row's operations for --state."""
    if value is None:
        return None
    table = _table(doc, ("operations",), value)
    check_keys(doc, ("operations",), table, ("key",))
    if "key" not in table:
        doc.fail(("operations",), "missing 'key': [operations] key = \"TransactionIdColumn\"")
    if not any(item.op != "set" for item in attributes):
        doc.fail(
            ("operations", "key"), "no attribute sends an operation (op = inc/add/remove/merge)"
        )
    return compile_field(doc, ("operations", "key"), table["key"], nulls=nulls, allowed=("column",))


def _objects(
    doc: MappingDoc, array: ArrayName, value: Any, nulls: frozenset[str]
) -> tuple[ObjectSpec, ...]:
    if type(value) is dict:
        doc.fail((array,), f"write [[{array}]] (an array of tables), not [{array}]")
    entries = expect(doc, (array,), value, list, f"[[{array}]] tables")
    keys = _OBJECT_KEYS[array]
    specs = []
    for index, entry in enumerate(entries):
        where: KeyPath = (array, index)
        table = _table(doc, where, entry)
        check_keys(doc, where, table, (*keys, "properties"))
        for key in _REQUIRED[array]:
            if key not in table:
                needed = ", ".join(_REQUIRED[array])
                doc.fail(where, f"missing {key!r} (each of {array} needs {needed})")
        compiled = {
            key: compile_field(
                doc,
                (*where, key),
                spec,
                nulls=nulls,
                default_type=keys[key],
                required=key in _REQUIRED[array],
            )
            for key, spec in table.items()
            if key != "properties"
        }
        specs.append(
            ObjectSpec(
                array,
                where,
                tuple(compiled[key] for key in _REQUIRED[array]),
                tuple(item for key, item in compiled.items() if key not in _REQUIRED[array]),
                _properties(doc, array, (*where, "properties"), table.get("properties", {}), nulls),
            )
        )
    return tuple(specs)


def _properties(
    doc: MappingDoc, array: ArrayName, where: KeyPath, value: Any, nulls: frozenset[str]
) -> tuple[CompiledField, ...]:
    table = _table(doc, where, value)
    for name in table:
        if not name or name.startswith("$") or name in _RESERVED_PROPERTIES[array]:
            doc.fail((*where, name), f"{name!r} cannot be a property name (empty, $…, or reserved)")
    return tuple(
        compile_field(doc, (*where, name), spec, nulls=nulls) for name, spec in table.items()
    )


def default_mapping(header: Sequence[str] | None, source: str) -> CompiledMapping:
    """The mapping used without ``--mapping``.

    CSV: the identifier is the first of external_id, braze_id, email, phone in the header; every
    other (non-blank) column is a string attribute of the same name, empty cells omitted.
    JSONL (``header`` None): each line is a Braze-shaped fragment or a flat object.
    An empty CSV (no header at all) has no rows: it gets that same mapping, which never runs."""
    if not header:
        return CompiledMapping(None, InputSettings(), None)
    key = next((name for name in IDENTIFIERS if name in header), None)
    if key is None:
        raise MappingError(
            f"no --mapping given, and the header of {source} has none of the identifier columns "
            f"{', '.join(IDENTIFIERS)}; the header has: {', '.join(header) or '(nothing)'}",
            path=source,
            key="identity",
        )

    def plain(column: str, where: KeyPath) -> CompiledField:
        reader = field_reader(
            label=column,
            column=column,
            convert=None,
            nulls=frozenset({""}),
            remap=None,
            on_empty=OMIT,
        )
        return CompiledField(column, where, column, reader)

    attributes = tuple(
        plain(name, ("attributes", name)) for name in header if name != key and name.strip()
    )
    return CompiledMapping(
        None, InputSettings(), Identity(key, plain(key, ("identity", key))), attributes
    )
