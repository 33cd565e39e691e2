"""A TOML value at a key path, checked for the kind it must have; a table, for its keys.

Every mistake goes through ``MappingDoc.fail``, so the message names the file, line, column and
key (``attributes.points.colum: unknown key 'colum' — did you mean 'column'?``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from importer.mapping.document import KeyPath, MappingDoc, did_you_mean

_TOML_KINDS = {str: "a string", int: "an integer", float: "a float", bool: "a boolean"}
_TOML_KINDS.update({list: "an array", dict: "a table", dt.datetime: "a date-time"})


def kind_of(value: Any) -> str:
    return _TOML_KINDS.get(type(value), type(value).__name__)


def expect(doc: MappingDoc, where: KeyPath, value: Any, kind: type, what: str = "") -> Any:
    """Fail unless ``value`` is of TOML ``kind`` (a bool is not an integer here)."""
    if type(value) is not kind:
        doc.fail(where, f"expected {what or _TOML_KINDS[kind]}, got {kind_of(value)}")
    return value


def expect_table(doc: MappingDoc, where: KeyPath, value: Any) -> dict[str, Any]:
    return dict(expect(doc, where, value, dict))


def check_keys(
    doc: MappingDoc, where: KeyPath, table: Mapping[str, Any], allowed: tuple[str, ...]
) -> None:
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
            doc.fail((*where, key), f"unknown key {key!r}{hint}")
