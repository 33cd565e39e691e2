"""SourceRow -> Item | RowFailure | RowSkipped, using a compiled Mapping.

Per row: read the identifier (empty: ``missing_identifier``), build the attributes object and
each event / purchase whose required columns are all non-empty, then check every object against
Braze's rules (``validate.check_object``). A value that fails conversion fails the whole record
(stage ``convert``); a broken Braze rule fails it at stage ``validate``, with the objects built.
A row with an identifier and nothing to send is skipped (``no_data``).

Without a mapping, a JSONL line is either a Braze-shaped fragment (``{"attributes": [...],
"events": [...], "purchases": [...]}``, objects sent as they are) or a flat object carrying an
identifier key, which becomes one attributes object.
"""

from __future__ import annotations

from typing import Any

from importer.errors import RecordError
from importer.fields import OMIT, FieldReader, Record, show
from importer.mapping import IDENTIFIERS, Mapping, ObjectSpec
from importer.models import ARRAYS, BrazeObject, Item, RowFailure, RowSkipped, SourceRow
from importer.validate import Violation, check_object

Outcome = Item | RowFailure | RowSkipped
_Fields = tuple[tuple[str, FieldReader], ...]
_FRAGMENT_KEYS = frozenset(ARRAYS)
_FLAT_IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")


class _CompiledObject:
    """An event or purchase spec as tuples of (key, reader), ready for the row loop."""

    __slots__ = ("optional", "properties", "required")

    def __init__(self, spec: ObjectSpec) -> None:
        self.required: _Fields = tuple((item.key, item.read) for item in spec.required)
        self.optional: _Fields = tuple((item.key, item.read) for item in spec.optional)
        self.properties: _Fields = tuple((item.key, item.read) for item in spec.properties)

    def build(self, record: Record, base: BrazeObject) -> BrazeObject | None:
        """The object for this row, or None when a required column is empty."""
        obj = dict(base)
        error: RecordError | None = None
        for key, read in self.required:
            try:
                value = read(record)
            except RecordError as exc:  # only fatal if the object is emitted at all
                error = error or exc
                continue
            if value is OMIT or value is None:
                return None
            obj[key] = value
        if error is not None:
            raise error
        for key, read in self.optional:
            value = read(record)
            if value is not OMIT:
                obj[key] = value
        if self.properties:
            properties = {}
            for key, read in self.properties:
                value = read(record)
                if value is not OMIT:
                    properties[key] = value
            if properties:
                obj["properties"] = properties
        return obj


class Converter:
    """Turns each SourceRow into an Item (or a failure, or a skip). Never raises for a row."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        identity = mapping.identity
        self._raw = identity is None
        self._id_key = identity.key if identity else ""
        self._id_read: FieldReader | None = identity.field.read if identity else None
        self._id_column = identity.field.column if identity else None
        self._alias_label = identity.alias_label if identity else None
        self._only_existing = identity.update_existing_only if identity else None
        self._attributes: _Fields = tuple((item.key, item.read) for item in mapping.attributes)
        self._events = tuple(_CompiledObject(spec) for spec in mapping.events)
        self._purchases = tuple(_CompiledObject(spec) for spec in mapping.purchases)

    def convert(self, row: SourceRow) -> Outcome:
        if self._raw:
            return _convert_unmapped(row)
        record = row.record
        try:
            ident = self._id_read(record) if self._id_read is not None else OMIT
            if ident is OMIT or ident is None:
                where = f"identity.{self._id_key}"
                message = f"{where}: the identifier (column {self._id_column!r}) is empty"
                return RowFailure(row.ref, "convert", "missing_identifier", message, record)
            base, user = self._base(ident)
            attributes: tuple[BrazeObject, ...] = ()
            if self._attributes:
                obj = dict(base)
                for key, read in self._attributes:
                    value = read(record)
                    if value is not OMIT:
                        obj[key] = value
                if len(obj) > len(base):
                    attributes = (obj,)
            events = _build_all(self._events, record, base)
            purchases = _build_all(self._purchases, record, base)
        except RecordError as exc:
            return RowFailure(row.ref, "convert", exc.code, exc.message, record)
        if not (attributes or events or purchases):
            return RowSkipped(row.ref, "no_data")
        return _checked(row, user, attributes, events, purchases)

    def _base(self, ident: Any) -> tuple[BrazeObject, str]:
        """The keys every object of this row carries, and the row's user key."""
        if self._alias_label is not None:
            base: BrazeObject = {
                "user_alias": {"alias_name": ident, "alias_label": self._alias_label}
            }
            user = f"user_alias:{self._alias_label}:{ident}"
        else:
            base = {self._id_key: ident}
            user = f"{self._id_key}:{ident}"
        if self._only_existing is not None:
            base["_update_existing_only"] = self._only_existing
        return base, user


def _build_all(
    specs: tuple[_CompiledObject, ...], record: Record, base: BrazeObject
) -> tuple[BrazeObject, ...]:
    if len(specs) == 1:  # the usual mapping: one event or purchase, or none
        obj = specs[0].build(record, base)
        return () if obj is None else (obj,)
    built = []
    for spec in specs:
        obj = spec.build(record, base)
        if obj is not None:
            built.append(obj)
    return tuple(built)


def _checked(
    row: SourceRow,
    user: str,
    attributes: tuple[BrazeObject, ...],
    events: tuple[BrazeObject, ...],
    purchases: tuple[BrazeObject, ...],
) -> Outcome:
    """The Item, unless some object breaks a Braze rule (then the record fails, objects kept)."""
    for obj in attributes:
        if (violation := check_object("attributes", obj)) is not None:
            return _invalid(row, "attributes", violation, attributes, events, purchases)
    for obj in events:
        if (violation := check_object("events", obj)) is not None:
            return _invalid(row, "event", violation, attributes, events, purchases)
    for obj in purchases:
        if (violation := check_object("purchases", obj)) is not None:
            return _invalid(row, "purchase", violation, attributes, events, purchases)
    return Item(row.ref, row.record, user, attributes, events, purchases)


def _invalid(
    row: SourceRow, what: str, violation: Violation, *built: tuple[BrazeObject, ...]
) -> RowFailure:
    objects: dict[str, list[BrazeObject]] = {
        name: list(objs) for name, objs in zip(ARRAYS, built, strict=True) if objs
    }
    message = f"{what}: {violation.message}"
    return RowFailure(row.ref, "validate", violation.code, message, row.record, objects=objects)


# --- without a mapping: JSONL lines taken as they are -------------------------------------------


def _convert_unmapped(row: SourceRow) -> Outcome:
    record = row.record
    if record and record.keys() <= _FRAGMENT_KEYS:
        return _fragment(row)
    return _flat(row)


def _fragment(row: SourceRow) -> Outcome:
    arrays: dict[str, tuple[BrazeObject, ...]] = {}
    for name in ARRAYS:
        objects = row.record.get(name, [])
        if type(objects) is not list or any(type(obj) is not dict for obj in objects):
            message = f"{name} must be an array of objects, got {show(objects)}"
            return RowFailure(row.ref, "convert", "invalid_fragment", message, row.record)
        arrays[name] = tuple(objects)
    first = next((objs[0] for objs in arrays.values() if objs), None)
    if first is None:
        return RowSkipped(row.ref, "no_data")
    user = _user_of(first) or f"row:{row.ref.source}:{row.ref.line}"
    return _checked(row, user, arrays["attributes"], arrays["events"], arrays["purchases"])


def _flat(row: SourceRow) -> Outcome:
    record = row.record
    key = next((k for k in _FLAT_IDENTIFIERS if record.get(k) not in (None, "")), None)
    if key is None:
        message = f"the object has none of the identifier keys {', '.join(_FLAT_IDENTIFIERS)}"
        return RowFailure(row.ref, "convert", "missing_identifier", message, record)
    obj = dict(record)
    if key in IDENTIFIERS and type(obj[key]) is int:  # {"external_id": 42}: Braze wants text
        obj[key] = str(obj[key])
    if not obj.keys() - {key, "_update_existing_only"}:
        return RowSkipped(row.ref, "no_data")
    return _checked(row, _user_of(obj) or key, (obj,), (), ())


def _user_of(obj: BrazeObject) -> str | None:
    """The user key of a Braze object: its identifier as ``kind:value``."""
    for key in _FLAT_IDENTIFIERS:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if key == "user_alias" and type(value) is dict:
            return f"user_alias:{value.get('alias_label')}:{value.get('alias_name')}"
        return f"{key}:{value}"
    return None
