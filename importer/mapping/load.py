"""The mapping file (TOML) -> a ``CompiledMapping``: identity, attributes, events, purchases.

Every problem is a ``MappingError`` naming the file, line, column and key, raised before anything
is read or sent: TOML syntax (tomllib's position), unknown keys (with "did you mean"), wrong value
types, unknown types or time zones, bad strptime formats, no or two identities, and — once the
header is known — columns missing from it (``CompiledMapping.check_header``, in
``importer.mapping.compiled``).

This module reads the file and checks ``[input]`` and ``[identity]``; the tables that write
attributes are compiled in ``importer.mapping.attribute_tables``, events and purchases in
``importer.mapping.object_tables``.

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
from importer.mapping.attribute_tables import attribute_fields, operations_key, subscription_groups
from importer.mapping.compiled import CompiledMapping, Identity, InputSettings
from importer.mapping.document import KeyPath, MappingDoc
from importer.mapping.field_spec import IDENTITY_OPTIONS, CompiledField, compile_field
from importer.mapping.object_tables import object_specs
from importer.mapping.readers import OMIT, field_reader
from importer.mapping.toml_checks import check_keys, expect, expect_table
from importer.read import MAX_CELL_BYTES_LIMIT

IDENTIFIERS = ("external_id", "braze_id", "email", "phone")  # also the default-mapping priority
_TOP_KEYS = (
    *("input", "identity", "attributes", "subscription_groups", "operations"),
    *("events", "purchases"),
)
_INPUT_KEYS = ("format", "encoding", "delimiter", "null_values", "max_cell_bytes")
_IDENTITY_KEYS = (*IDENTIFIERS, "user_alias", "update_existing_only")
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
    attributes = attribute_fields(doc, document.get("attributes", {}), identity.key, nulls)
    groups = subscription_groups(doc, document.get("subscription_groups", []), nulls)
    if groups and any(item.key == "subscription_groups" for item in attributes):
        doc.fail(
            ("attributes", "subscription_groups"),
            "subscription_groups is set by [[subscription_groups]] tables: keep one of the two",
        )
    key = operations_key(doc, document.get("operations"), attributes, nulls)
    events = object_specs(doc, "events", document.get("events", []), nulls)
    purchases = object_specs(doc, "purchases", document.get("purchases", []), nulls)
    if not (attributes or groups or events or purchases):
        doc.fail(
            (),
            "the mapping sends nothing: add [attributes], [[subscription_groups]], [[events]] "
            "or [[purchases]]",
        )
    return CompiledMapping(
        doc.path, settings, identity, attributes, events, purchases, doc.text, groups, key
    )


def _input(doc: MappingDoc, value: Any) -> InputSettings:
    table = expect_table(doc, ("input",), value)
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
    table = expect_table(doc, ("identity",), value)
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
        alias = expect_table(doc, where, spec)
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
