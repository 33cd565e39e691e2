"""The per-row loop of a mapping's fields, generated once per mapping as straight-line Python.

An interpreted loop over field plans unpacks a 7-tuple and tests which case applies for every
field of every row; that bookkeeping cost ~1 µs per row on the benchmark mapping. The functions
made here do only what each field needs, in the same order and with the same results.

Two shapes: over a record dict (JSONL, failures being retried), and over the cells of a CSV row
by position (``Columns``: the header's column positions), which spares building a dict per row.
The cell shape exists only when every field is a literal or a plain column of the header.

No text from the mapping ever enters the generated source: every key, column, null set, parser,
reader and label is passed in as a closure variable ``c<n>`` (cell positions are our own
integers), and the source is assembled only from the fixed templates below. A mapping cannot
inject code; it only chooses templates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importer.convert.field_plans import COMBINE, MERGE, NO_COLUMN, SET, FieldPlan, Refused
from importer.convert.generated import Columns, GeneratedSource, Guard, Suspect
from importer.mapping import OMIT, FieldReader
from importer.models import BrazeObject

Data = Any  # a record dict, or a CSV row's cells (list[str]) for code made with Columns
Fill = Callable[[BrazeObject, Data], BrazeObject]
Build = Callable[[Data, BrazeObject], BrazeObject | None]
Read = Callable[[Data], Any]


class NotPlain(Exception):
    """A field the cell shape cannot read (a path, a column the header lacks)."""


_MISSING: Any = object()  # not in a map's table
TEXT: Any = object()  # what was put is the trimmed text of a cell


def _combined(earlier: Any, value: dict[str, Any]) -> dict[str, Any]:
    """``{"add": [...]}`` and ``{"remove": [...]}`` of one attribute, as one value."""
    return value if earlier is None else {**earlier, **value}


# Per row, a subscription group's entry from its id and state: the entry, or RecordError.
GroupEntry = Callable[[Any, Any], dict[str, Any]]


class MappingSource(GeneratedSource):
    """A generated function of a mapping's fields: the templates of the fields' code."""

    def optional(self, depth: int, obj: str, plan: FieldPlan, guard: Guard | None = None) -> None:
        """Set ``obj[key]`` when the field has a value; a bad value raises RecordError, and one
        that fails the ``guard`` fused here raises Suspect."""
        key, column, nulls, parse, on_empty, read, label, table, how = plan
        put = self._checked(self._putter(obj, self.value(key), how), guard)
        if column is NO_COLUMN:
            if read is None:  # a literal
                if on_empty is not OMIT:
                    put(depth, self.value(on_empty), on_empty)
                return
            self.add(depth, f"value = {self._reader(read)}({self.data})")
            self.add(depth, "if value is not OMIT:")
            put(depth + 1, "value")
            return
        text = self._raw(depth, column)
        if on_empty is OMIT:
            filled = "raw and raw not in " + self.value(nulls) if nulls else "raw"
            self.add(text, f"if {filled}:")
        else:
            self.add(text, f"if {self._empty(nulls)}:")
            put(text + 1, self.value(on_empty), on_empty)
            self.add(text, "else:")
        if parse is None and table is None:
            put(text + 1, "raw", TEXT)
        else:
            self._parse(text + 1, parse, label, table)
            if on_empty is OMIT:
                self.add(text + 1, "if value is not OMIT:")
                put(text + 2, "value")
            else:
                empty = self.value(on_empty)
                self.add(text + 1, f"value = {empty} if value is OMIT else value")
                put(text + 1, "value")
        if self.columns is None:
            self.add(depth, "else:")
            self.add(depth + 1, f"value = {self._reader(read)}(record)")
            self.add(depth + 1, "if value is not OMIT:")
            put(depth + 2, "value")

    def _checked(self, put: Callable[[int, str], None], guard: Guard | None) -> Callable[..., None]:
        """``put``, then the guard's check of what was put: inline for a variable (``TEXT``:
        known to be text), at generation for a constant (a default: it fails on every row or
        on none)."""

        def checked(depth: int, expression: str, constant: Any = NO_COLUMN) -> None:
            put(depth, expression)
            if guard is None:
                return
            if constant is TEXT or constant is NO_COLUMN:
                failed = f"raise {self.value(Suspect)}"
                self.check(depth, expression, guard, failed, text=constant is TEXT)
            elif guard[3](guard[0], constant) is not None:
                self.add(depth, f"raise {self.value(Suspect)}")

        return checked

    def _putter(self, obj: str, k: str, how: str) -> Callable[[int, str], None]:
        """What writes a value into ``obj[k]``, by ``how`` (see FieldPlan)."""

        def put(depth: int, expression: str) -> None:
            if how == COMBINE:
                combined = self.value(_combined)
                self.add(depth, f"{obj}[{k}] = {combined}({obj}.get({k}), {expression})")
                return
            self.add(depth, f"{obj}[{k}] = {expression}")
            if how == MERGE:
                self.add(depth, f'{obj}["_merge_objects"] = True')

        return put

    def groups(
        self, depth: int, groups: tuple[tuple[FieldPlan, FieldPlan, GroupEntry], ...]
    ) -> None:
        """``obj["subscription_groups"]``: an entry per group whose state cell is not empty."""
        self.add(depth, "groups = None")
        for ident, state, entry in groups:
            self.value_of(depth, state)
            self.add(depth, "if value is not OMIT and value is not None:")
            self.add(depth + 1, "state = value")
            self.value_of(depth + 1, ident)
            self.add(depth + 1, f"entry = {self.value(entry)}(value, state)")
            self.add(depth + 1, "if groups is None:")
            self.add(depth + 2, "groups = [entry]")
            self.add(depth + 1, "else:")
            self.add(depth + 2, "groups.append(entry)")
        self.add(depth, "if groups is not None:")
        self.add(depth + 1, 'obj["subscription_groups"] = groups')

    def required(self, depth: int, plan: FieldPlan, guard: Guard | None = None) -> None:
        """Set ``obj[key]``, or return None when the field has no value; a conversion error is
        kept in ``error`` (it matters only if the object is built after all). A value that
        fails the ``guard`` fused here raises Suspect."""
        key, column, _nulls, _parse, on_empty, read, _label, _table, _how = plan
        k = self.value(key)
        if column is NO_COLUMN and read is None:  # a literal
            if on_empty is OMIT or on_empty is None:
                self.add(depth, "return None")
            else:
                self._checked(self._putter("obj", k, SET), guard)(
                    depth, self.value(on_empty), on_empty
                )
            return
        self.add(depth, "try:")
        self.value_of(depth + 1, plan)
        self.add(depth, "except RecordError as exc:")
        self.add(depth + 1, "error = error or exc")
        self.add(depth, "else:")
        self.add(depth + 1, "if value is OMIT or value is None:")
        self.add(depth + 2, "return None")
        self._checked(self._putter("obj", k, SET), guard)(depth + 1, "value")

    def value_of(self, depth: int, plan: FieldPlan) -> None:
        """Put the field's value (OMIT or None when it has none) in ``value``."""
        _key, column, nulls, parse, on_empty, read, label, table, _how = plan
        if column is NO_COLUMN:
            if read is None:  # a literal
                self.add(depth, f"value = {self.value(on_empty)}")
                return
            self.add(depth, f"value = {self._reader(read)}({self.data})")
            return
        empty = self.value(on_empty)
        text = self._raw(depth, column)
        self.add(text, f"if {self._empty(nulls)}:")
        self.add(text + 1, f"value = {empty}")
        self.add(text, "else:")
        if parse is None and table is None:
            self.add(text + 1, "value = raw")
        else:
            self._parse(text + 1, parse, label, table)
            self.add(text + 1, "if value is OMIT:")
            self.add(text + 2, f"value = {empty}")
        if self.columns is None:
            self.add(depth, "else:")
            self.add(depth + 1, f"value = {self._reader(read)}(record)")

    def _raw(self, depth: int, column: str) -> int:
        """Put the trimmed text of ``column`` in ``raw``; return the depth of the text case."""
        if self.columns is not None:
            if column not in self.columns:
                raise NotPlain(column)
            self.add(depth, f"raw = cells[{int(self.columns[column])}].strip()")
            return depth
        self.add(depth, f"raw = get({self.value(column)})")
        self.add(depth, "if raw.__class__ is str:")
        self.add(depth + 1, "raw = raw.strip()")
        return depth + 1

    def _reader(self, read: FieldReader | None) -> str:
        if self.columns is not None:
            raise NotPlain(repr(read))  # a field's own reader takes a record dict
        assert read is not None, "literals are handled by each template"
        return self.value(read)

    def _empty(self, nulls: frozenset[str]) -> str:
        return f"not raw or raw in {self.value(nulls)}" if nulls else "not raw"

    def _parse(self, depth: int, parse: Any, label: str, table: Any = None) -> None:
        """Put the value of the text ``raw`` in ``value``: from the map's table when it names
        the text, else ``parse`` (None: the text itself)."""
        if table is not None:
            self.add(depth, f"value = {self.value(table)}.get(raw, {self.value(_MISSING)})")
            self.add(depth, f"if value.__class__ is {self.value(Refused)}:")
            self.add(depth + 1, "raise value.error()")
            self.add(depth, f"if value is {self.value(_MISSING)}:")
            depth += 1
        if parse is None:
            self.add(depth, "value = raw")
            return
        self.add(depth, "try:")
        self.add(depth + 1, f"value = {self.value(parse)}(raw)")
        self.add(depth, "except RecordError as exc:")
        where = self.value(label)
        self.add(
            depth + 1, f'raise RecordError(exc.code, f"{{{where}}}: {{exc.message}}") from None'
        )


Guards = tuple[Guard | None, ...]  # one per plan (or none at all): the checks fused there


def make_fill(
    plans: tuple[FieldPlan, ...],
    columns: Columns | None = None,
    groups: tuple[tuple[FieldPlan, FieldPlan, GroupEntry], ...] = (),
    guards: Guards = (),
) -> Fill:
    """``fill(obj, data)``: set each field of ``plans`` that has a value, then the subscription
    ``groups`` (id plan, state plan, entry maker); return ``obj``. A value that cannot be
    converted raises RecordError, one that fails its guard Suspect; NotPlain if ``columns``
    cannot do."""
    source = MappingSource(columns)
    for plan, guard in zip(plans, guards or (None,) * len(plans), strict=True):
        source.optional(1, "obj", plan, guard)
    if groups:
        source.groups(1, groups)
    source.add(1, "return obj")
    fill: Fill = source.function("fill", f"obj, {source.data}")
    return fill


def make_build(
    required: tuple[FieldPlan, ...],
    optional: tuple[FieldPlan, ...],
    properties: tuple[FieldPlan, ...],
    columns: Columns | None = None,
    guards: tuple[Guards, Guards, Guards] = ((), (), ()),
) -> Build:
    """``build(data, base)``: the object, or None when a required field has no value; the
    ``guards`` of the required, optional and properties' fields (a property's: of its value)."""
    source = MappingSource(columns)
    source.add(1, "obj = base.copy()")
    source.add(1, "error = None")
    kept = [
        part or (None,) * len(plans)
        for part, plans in zip(guards, (required, optional, properties), strict=True)
    ]
    for plan, guard in zip(required, kept[0], strict=True):
        source.required(1, plan, guard)
    source.add(1, "if error is not None:")
    source.add(2, "raise error")
    for plan, guard in zip(optional, kept[1], strict=True):
        source.optional(1, "obj", plan, guard)
    if properties:
        source.add(1, "properties = {}")
        for plan, guard in zip(properties, kept[2], strict=True):
            source.optional(1, "properties", plan, guard)
        source.add(1, "if properties:")
        source.add(2, 'obj["properties"] = properties')
    source.add(1, "return obj")
    build: Build = source.function("build", f"{source.data}, base")
    return build


def make_read(plan: FieldPlan, columns: Columns | None = None) -> Read:
    """``read(data)``: the field's value, OMIT or None when it has none (the identifier)."""
    source = MappingSource(columns)
    source.value_of(1, plan)
    source.add(1, "return value")
    read: Read = source.function("read", source.data)
    return read
