"""The ``[[events]]`` and ``[[purchases]]`` tables -> one ``ObjectSpec`` each: the keys an
object needs, the others it may have, and its ``properties``.

Each is checked as ``importer.mapping.load`` meets it; a mistake names file, line, column and key.
"""

from __future__ import annotations

from typing import Any

from importer.mapping.compiled import ObjectSpec
from importer.mapping.document import KeyPath, MappingDoc
from importer.mapping.field_spec import CompiledField, compile_field
from importer.mapping.toml_checks import check_keys, expect, expect_table
from importer.models import ArrayName

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


def object_specs(
    doc: MappingDoc, array: ArrayName, value: Any, nulls: frozenset[str]
) -> tuple[ObjectSpec, ...]:
    if type(value) is dict:
        doc.fail((array,), f"write [[{array}]] (an array of tables), not [{array}]")
    entries = expect(doc, (array,), value, list, f"[[{array}]] tables")
    keys = _OBJECT_KEYS[array]
    specs = []
    for index, entry in enumerate(entries):
        where: KeyPath = (array, index)
        table = expect_table(doc, where, entry)
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
    table = expect_table(doc, where, value)
    for name in table:
        if not name or name.startswith("$") or name in _RESERVED_PROPERTIES[array]:
            doc.fail((*where, name), f"{name!r} cannot be a property name (empty, $…, or reserved)")
    return tuple(
        compile_field(doc, (*where, name), spec, nulls=nulls) for name, spec in table.items()
    )
