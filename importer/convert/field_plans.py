"""A mapped field (``CompiledField``) -> its plan (``FieldPlan``): the flat tuple from which
importer.convert.codegen generates the field's code.

A plan says where the field's value comes from (a column and how its text is read, the field's
own reader, or a literal) and how it is put in the object; a ``map`` is worked out once here,
into a table of what each mapped text gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from importer.errors import RecordError
from importer.mapping import OMIT, ColumnReader, CompiledField, FieldReader, LiteralReader

# A key no record has: the field of a literal (its value is ``on_empty``) or of a reader that is
# not a plain column (``read`` does everything).
NO_COLUMN: Any = object()

# One field: (key, column, nulls, parse, on_empty, read, label, table, how). For a text cell the
# generated code trims it, tests it for emptiness and ``nulls``, looks it up in ``table`` (a
# ``map``: what each mapped text gives, worked out once; None: no map) and otherwise applies
# ``parse`` (None: the text itself); ``read`` handles every other value (None: a literal).
# ``nulls`` holds the ``null_values`` besides "", usually none: a fresh cell is then never hashed.
# ``how`` the value is put in the object: SET (``obj[key] = value``), COMBINE (an ``add`` and a
# ``remove`` of one attribute share one value) or MERGE (the object also gets ``_merge_objects``).
FieldPlan = tuple[str, Any, frozenset[str], Any, Any, FieldReader | None, str, Any, str]
SET, COMBINE, MERGE = "set", "combine", "merge"


class Refused:
    """A ``map`` entry whose value the field's type refuses: raised when a cell names it."""

    __slots__ = ("code", "message")

    def __init__(self, error: RecordError) -> None:
        self.code = error.code
        self.message = error.message

    def error(self) -> RecordError:
        # A new one each time: raising one instance again would grow its traceback per row.
        return RecordError(self.code, self.message)


_NO_NULLS: frozenset[str] = frozenset()


def field_plan(item: CompiledField, how: str = SET) -> FieldPlan:
    """``item``'s plan; ``how`` it is put in the object (see FieldPlan)."""
    read = item.read
    if isinstance(read, LiteralReader):
        return (item.key, NO_COLUMN, _NO_NULLS, None, read.value, None, "", None, how)
    if isinstance(read, ColumnReader):
        nulls = read.nulls - {""}
        table = None if read.remap is None else _map_table(read, read.remap)
        plan = (item.key, read.column, nulls, read.parse, read.on_empty, read.read, read.label)
        return (*plan, table, how)
    return (item.key, NO_COLUMN, _NO_NULLS, None, OMIT, read, "", None, how)


def attribute_plans(fields: tuple[CompiledField, ...]) -> tuple[FieldPlan, ...]:
    """The attributes' plans: an ``add`` and a ``remove`` of one attribute combine into one
    value; a ``merge`` marks the object ``_merge_objects`` (docs/braze.md, Operations on
    attributes)."""
    keys = [item.key for item in fields]
    return tuple(
        field_plan(
            item, COMBINE if keys.count(item.key) > 1 else MERGE if item.op == "merge" else SET
        )
        for item in fields
    )


def _map_table(read: ColumnReader, remap: Mapping[str, Any]) -> dict[str, Any]:
    """What the field gives for each text its ``map`` names, worked out once by the field's
    own reader: a value (``on_empty`` when the mapped value counts as empty) or, for a mapped
    value its type refuses, the error to raise (``Refused``). A key that a trimmed, non-empty,
    non-null cell can never equal is left out: the reader would never reach the map with it."""
    table: dict[str, Any] = {}
    for text in remap:
        if not text or text != text.strip() or text in read.nulls:
            continue
        try:
            table[text] = read.read({read.column: text})
        except RecordError as exc:
            table[text] = Refused(exc)
    return table
