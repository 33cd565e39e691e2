"""SourceRow -> Item | RowFailure | RowSkipped, using a ``CompiledMapping``.

Per row: read the identifier (empty: ``missing_identifier``), build the attributes object and
each event / purchase whose required columns are all non-empty (``importer.convert.builder``),
then check the objects against Braze's rules — with the checks compiled for the mapping
(``importer.convert.checks``: only where a field's values can break a rule; the same first
violation ``check_object`` reports). A value that fails conversion fails the whole record (stage
``convert``); a broken Braze rule fails it at stage ``validate``, with the objects built. A row
with an identifier and nothing to send is skipped (``no_data``).

Without a mapping, a JSONL line is either a Braze-shaped fragment (``{"attributes": [...],
"events": [...], "purchases": [...]}``, objects sent as they are) or a flat object carrying an
identifier key, which becomes one attributes object.
"""

from __future__ import annotations

from typing import Any

from importer.convert.builder import RowCode, RowFunction, row_code, row_function
from importer.convert.checks import Checks, first_violation, identity_check
from importer.convert.codegen import NotPlain
from importer.convert.generated import Suspect
from importer.errors import RecordError
from importer.mapping import IDENTIFIERS, OMIT, CompiledMapping, show
from importer.models import (
    ARRAYS,
    BrazeObject,
    CsvRecord,
    Item,
    Record,
    RowFailure,
    RowSkipped,
    SourceRow,
    record_dict,
)
from importer.rules import USER_IDENTIFIERS, Violation, check_object, operation_of, user_key

Conversion = Item | RowFailure | RowSkipped
_FRAGMENT_KEYS = frozenset(ARRAYS)


class Converter:
    """Turns each SourceRow into an Item (or a failure, or a skip). Never raises for a row."""

    def __init__(self, mapping: CompiledMapping, fused: bool = True, wire: bool = False) -> None:
        self.mapping = mapping
        self._fused = fused
        self._wire = wire  # to_wire
        self._general: Converter | None = None  # made for the first row that needs it
        identity = mapping.identity
        self._raw = identity is None
        self._id_key = identity.key if identity else ""
        self._id_column = identity.field.column if identity else None
        self._key_column = mapping.operations_key.column if mapping.operations_key else None
        self._alias_label = identity.alias_label if identity else None
        self._only_existing = identity.update_existing_only if identity else None
        self._user_prefix = (
            f"user_alias:{self._alias_label}:"
            if self._alias_label is not None
            else f"{self._id_key}:"
        )
        id_check = identity_check(self._id_key) if identity else None
        self._id_checks: Checks = (id_check,) if id_check else ()
        # An identifier of this many characters passes its check without a call.
        self._id_text = (id_check.shortest, id_check.longest) if id_check else (1, 0)
        self._attributes = bool(mapping.attributes or mapping.subscription_groups)
        self._dict_code = row_code(mapping, None, fused)
        # The code over a CSV file's cells, for the header it was made for (None: the mapping
        # needs record dicts, e.g. for a ``map``).
        self._header: tuple[str, ...] | None = None
        self._cells_code: RowCode | None = None
        self._row: RowFunction | None = None  # that code's whole row in one call (_row_for)

    def _code_for(self, record: Record) -> tuple[RowCode, Any]:
        """The code for this record, and what to pass it (a dict, or a CSV row's cells)."""
        if not isinstance(record, CsvRecord):
            return self._dict_code, record
        csv_record = record
        if csv_record.header is not self._header:
            self._header = csv_record.header
            columns = {name: n for n, name in enumerate(self._header) if name}
            try:
                self._cells_code = row_code(self.mapping, columns, self._fused)
            except NotPlain:
                self._cells_code = None
            self._row = self._row_for(self._cells_code)
        if self._cells_code is None:
            return self._dict_code, csv_record.as_dict()
        return self._cells_code, csv_record.cells

    def convert(self, row: SourceRow) -> Conversion:
        if self._raw:
            return _convert_unmapped(row)
        record = row.record
        if record.__class__ is CsvRecord:
            if record.header is not self._header:
                self._code_for(record)  # the code for this header, and its row function
            if self._row is not None:  # a CSV row: the common case, in one generated call
                try:
                    item = self._row(row.ref, record, record.cells)
                except RecordError as exc:
                    return RowFailure(row.ref, "convert", exc.code, exc.message, record)
                except Suspect:
                    return self._again(row)
                if item is not None:
                    return item
        if record.__class__ is CsvRecord and record.header is self._header and self._cells_code:
            code, data = self._cells_code, record.cells
        else:
            code, data = self._code_for(record)
        violation: Violation | None = None
        blamed = ""
        try:
            ident = code.identity(data) if code.identity is not None else OMIT
            if ident is OMIT or ident is None:
                where = f"identity.{self._id_key}"
                message = f"{where}: the identifier (column {self._id_column!r}) is empty"
                return RowFailure(row.ref, "convert", "missing_identifier", message, record)
            base = self._base(ident)
            attributes: tuple[BrazeObject, ...] = ()
            if self._attributes:
                obj = code.attributes(base.copy(), data)
                if len(obj) > len(base):
                    attributes = (obj,)
                    if code.attributes_check is not None:
                        violation = code.attributes_check(obj)
                        blamed = "attributes"
            events: tuple[BrazeObject, ...] = ()
            for build, check in code.events:
                built = build(data, base)
                if built is not None:
                    events += (built,)
                    if violation is None and check is not None:
                        violation = check(built)
                        blamed = "event"
            purchases: tuple[BrazeObject, ...] = ()
            for build, check in code.purchases:
                built = build(data, base)
                if built is not None:
                    purchases += (built,)
                    if violation is None and check is not None:
                        violation = check(built)
                        blamed = "purchase"
        except RecordError as exc:
            return RowFailure(row.ref, "convert", exc.code, exc.message, record)
        except Suspect:
            return self._again(row)
        if not (attributes or events or purchases):
            return RowSkipped(row.ref, "no_data")
        shortest, longest = self._id_text
        if not (ident.__class__ is str and shortest <= len(ident) <= longest):
            # The identifier leads every object: if it breaks a rule, the first object fails.
            found = first_violation(base, self._id_checks)
            if found is not None:
                violation = found
                blamed = "attributes" if attributes else "event" if events else "purchase"
        if violation is not None:
            return _invalid(row, blamed, violation, attributes, events, purchases)
        user = f"{self._user_prefix}{ident}"
        if code.operations is not None and attributes:
            key = code.operations(data)
            if key is not OMIT and key is not None:
                return Item(row.ref, record, user, attributes, events, purchases, operations=key)
            if any(map(operation_of, attributes[0].values())):
                # Named by no key, its operation would be remembered by the file's fingerprint
                # and line, or not at all (stdin): not what the mapping promised.
                column = self._key_column
                message = f"operations.key: the column {column!r} is empty on a row with operations"
                return RowFailure(row.ref, "convert", "missing_operations_key", message, record)
        return Item(row.ref, record, user, attributes, events, purchases)

    def to_wire(self) -> None:
        """From here on, the Item of a CSV row the row function converts carries its objects as
        JSON only (``Item.wire``, made as each object is checked, its dict freed at once): for
        a run whose items go straight to the packer, which needs bytes (no --state, which
        reads the objects)."""
        if not self._wire:
            self._wire = True
            self._header = None  # the row function is made again for the next row's header

    def _row_for(self, code: RowCode | None) -> RowFunction | None:
        """The row function of fused cells code (builder.row_function): its Item is the one the
        code below makes, and a row it leaves (None) is converted here, so every failure, skip
        and message stays this code's. Not for an alias (its identifier is an object) or an
        operations key (read per row for --state)."""
        if code is None or not self._fused or self._alias_label is not None:
            return None
        if code.identity is None or code.operations is not None:
            return None
        base: tuple[tuple[str, Any], ...] = ((self._id_key, None),)
        if self._only_existing is not None:
            base += (("_update_existing_only", self._only_existing),)
        limits = self._id_text if self._id_checks else (0, 2**62)
        return row_function(code, base, self._user_prefix, limits, self._attributes, self._wire)

    def _again(self, row: SourceRow) -> Conversion:
        """A row whose value failed a check fused into the code (Suspect), converted again by
        code that checks each object after building it: that finds the violation to report,
        the first in order, as the general path always has."""
        if self._general is None:
            self._general = Converter(self.mapping, fused=False)
        return self._general.convert(row)

    def _base(self, ident: Any) -> BrazeObject:
        """The keys every object of this row carries."""
        base: BrazeObject
        if self._alias_label is not None:
            base = {"user_alias": {"alias_name": ident, "alias_label": self._alias_label}}
        else:
            base = {self._id_key: ident}
        if self._only_existing is not None:
            base["_update_existing_only"] = self._only_existing
        return base


def _checked(
    row: SourceRow,
    user: str,
    attributes: tuple[BrazeObject, ...],
    events: tuple[BrazeObject, ...],
    purchases: tuple[BrazeObject, ...],
) -> Conversion:
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


def _convert_unmapped(row: SourceRow) -> Conversion:
    record = record_dict(row.record)
    if record and record.keys() <= _FRAGMENT_KEYS:
        return _fragment(row, record)
    return _flat(row, record)


def _fragment(row: SourceRow, record: dict[str, Any]) -> Conversion:
    arrays: dict[str, tuple[BrazeObject, ...]] = {}
    for name in ARRAYS:
        objects = record.get(name, [])
        if type(objects) is not list or any(type(obj) is not dict for obj in objects):
            message = f"{name} must be an array of objects, got {show(objects)}"
            return RowFailure(row.ref, "convert", "invalid_fragment", message, record)
        arrays[name] = tuple(objects)
    first = next((objs[0] for objs in arrays.values() if objs), None)
    if first is None:
        return RowSkipped(row.ref, "no_data")
    user = user_key(first) or f"row:{row.ref.source}:{row.ref.line}"
    return _checked(row, user, arrays["attributes"], arrays["events"], arrays["purchases"])


def _flat(row: SourceRow, record: dict[str, Any]) -> Conversion:
    key = next((k for k in USER_IDENTIFIERS if record.get(k) not in (None, "")), None)
    if key is None:
        message = f"the object has none of the identifier keys {', '.join(USER_IDENTIFIERS)}"
        return RowFailure(row.ref, "convert", "missing_identifier", message, record)
    obj = dict(record)
    if key in IDENTIFIERS and type(obj[key]) is int:  # {"external_id": 42}: Braze wants text
        obj[key] = str(obj[key])
    if not obj.keys() - {key, "_update_existing_only"}:
        return RowSkipped(row.ref, "no_data")
    return _checked(row, user_key(obj) or key, (obj,), (), ())
