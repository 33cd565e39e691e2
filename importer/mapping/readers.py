"""The per-field reader the converter uses for each mapped field, compiled once per field.

Per row it does: fetch the cell, trim it, treat ``null_values`` as empty, apply ``map`` (a JSONL
number or boolean by its text: ``true``, ``1``), convert
(``importer.mapping.values``), and on empty return the precomputed ``default`` / ``null`` /
``OMIT``. It is a ``ColumnReader`` (or a ``LiteralReader``): callable like any reader, and
exposing its parts so the converter can run the common case — a text cell — inline, without a
call per field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from importer.errors import RecordError
from importer.mapping.values import OMIT, ValueConverter, to_string

RecordDict = dict[str, Any]
FieldReader = Callable[[RecordDict], Any]
__all__ = ["OMIT", "ColumnReader", "FieldReader", "LiteralReader", "RecordDict", "field_reader"]


# --- the per-field reader -----------------------------------------------------------------------


_UNMAPPED: Any = object()


def walk(record: Any, parts: tuple[str, ...]) -> Any:
    """JSONL ``a.b``: the value at that path, or None when some step is missing."""
    node = record
    for part in parts:
        if type(node) is not dict:
            return None
        node = node.get(part)
    return node


class ColumnReader:
    """One column-fed field, compiled once. Calling it reads the field from a record.

    The converter also reads the parts: for a text cell it trims, tests ``nulls``, looks the
    text up in ``remap`` (what each mapped text gives is worked out once, by ``read``), applies
    ``parse`` (None: the text itself) inline, and calls ``read`` (this reader's own closure) for
    everything else.
    """

    __slots__ = ("column", "label", "nulls", "on_empty", "parse", "read", "remap")

    def __init__(
        self,
        *,
        label: str,
        column: str,
        parse: ValueConverter | None,
        nulls: frozenset[str],
        remap: Mapping[str, Any] | None,
        on_empty: Any,
        read: FieldReader,
    ) -> None:
        self.label = label
        self.column = column
        self.parse = parse
        self.nulls = nulls
        self.remap = remap
        self.on_empty = on_empty
        self.read = read

    def __call__(self, record: RecordDict) -> Any:
        return self.read(record)


def field_reader(
    *,
    label: str,
    column: str,
    convert: ValueConverter | None,
    nulls: frozenset[str],
    remap: Mapping[str, Any] | None,
    on_empty: Any,
    parse: ValueConverter | None = None,
) -> ColumnReader:
    """Compile one column-fed field. ``convert`` None means plain text (type string).

    ``nulls`` must contain "". ``on_empty`` is OMIT, None (send null) or the converted default.
    ``parse`` is ``convert`` for trimmed text only, when a faster one exists.
    A column name with dots is tried as a key first (CSV), then as a path (JSONL)."""
    return ColumnReader(
        label=label,
        column=column,
        parse=parse or convert,
        nulls=nulls,
        remap=remap,
        on_empty=on_empty,
        read=_read_closure(label, column, convert, nulls, remap, on_empty),
    )


def _read_closure(
    label: str,
    column: str,
    convert: ValueConverter | None,
    nulls: frozenset[str],
    remap: Mapping[str, Any] | None,
    on_empty: Any,
) -> FieldReader:
    path = tuple(column.split(".")) if "." in column else None
    extra = nulls - {""}  # usually empty: then a fresh cell is never hashed

    def read(record: RecordDict) -> Any:
        raw = record.get(column)
        if raw is None and path is not None:
            raw = walk(record, path)
        if raw.__class__ is str:
            raw = raw.strip()
            if not raw or (extra and raw in extra):
                return on_empty
            if remap is not None:
                raw = remap.get(raw, raw)
                if raw == "" or raw is None:
                    return on_empty
            if convert is None and raw.__class__ is str:
                return raw
        elif raw is None:
            return on_empty
        elif remap is not None and raw.__class__ in (bool, int, float):
            mapped = remap.get(to_string(raw), _UNMAPPED)  # JSONL true / 1 as the text "true" / "1"
            if mapped is not _UNMAPPED:
                if mapped == "" or mapped is None:
                    return on_empty
                raw = mapped
        try:
            value = convert(raw) if convert is not None else to_string(raw)
        except RecordError as exc:
            raise RecordError(exc.code, f"{label}: {exc.message}") from None
        return on_empty if value is OMIT else value

    if path is not None or remap is not None:
        return read
    # The common shapes (a plain column holding text: every CSV cell) get a lean closure;
    # anything else (JSONL values that are typed or missing) takes the general path.
    if convert is None:

        def read_text(record: RecordDict) -> Any:
            raw = record.get(column)
            if raw.__class__ is str:
                raw = raw.strip()
                return on_empty if not raw or (extra and raw in extra) else raw
            return read(record)

        return read_text

    def read_typed(record: RecordDict) -> Any:
        raw = record.get(column)
        if raw.__class__ is not str:
            return read(record)
        raw = raw.strip()
        if not raw or (extra and raw in extra):
            return on_empty
        try:
            value = convert(raw)
        except RecordError as exc:
            raise RecordError(exc.code, f"{label}: {exc.message}") from None
        return on_empty if value is OMIT else value

    return read_typed


class LiteralReader:
    """A ``{ value = ... }`` field: the same (already converted) value for every row."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, record: RecordDict) -> Any:
        return self.value


def literal_reader(value: Any) -> LiteralReader:
    return LiteralReader(value)
