"""The per-row loop of a mapping's fields, generated once per mapping as straight-line Python.

An interpreted loop over field plans unpacks a 7-tuple and tests which case applies for every
field of every row; that bookkeeping cost ~1 µs per row on the benchmark mapping. The functions
made here do only what each field needs, in the same order and with the same results.

No text from the mapping ever enters the generated source: every key, column, null set, parser,
reader and label is passed in as a closure variable ``c<n>``, and the source is assembled only
from the fixed templates below. A mapping cannot inject code; it only chooses templates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importer.errors import RecordError
from importer.fields import FieldReader, Record
from importer.models import BrazeObject
from importer.values import OMIT

# A key no record has: the field of a literal (its value is ``on_empty``) or of a reader that is
# not a plain column (``read`` does everything).
NO_COLUMN: Any = object()

# One field: (key, column, nulls, parse, on_empty, read, label). For a text cell the generated
# code trims it, tests it for emptiness and ``nulls`` and applies ``parse`` (None: the text
# itself); ``read`` handles every other value (None: a literal). ``nulls`` holds the
# ``null_values`` besides "", usually none: a fresh cell is then never hashed.
Plan = tuple[str, Any, frozenset[str], Any, Any, FieldReader | None, str]
Fill = Callable[[BrazeObject, Record], BrazeObject]
Build = Callable[[Record, BrazeObject], BrazeObject | None]


class _Source:
    """Lines of one generated function and the values its closure holds."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.values: list[Any] = []

    def value(self, value: Any) -> str:
        self.values.append(value)
        return f"c{len(self.values) - 1}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, name: str, signature: str) -> Callable[..., Any]:
        names = ", ".join(f"c{n}" for n in range(len(self.values)))
        text = "\n".join(
            [f"def _make(OMIT, RecordError, {names}):", f"    def {name}({signature}):"]
            + ["    " + line for line in self.lines]
            + [f"    return {name}"]
        )
        namespace: dict[str, Any] = {}
        exec(compile(text, f"<mapping {name}>", "exec"), namespace)
        made: Callable[..., Any] = namespace["_make"](OMIT, RecordError, *self.values)
        return made

    # -- the templates ---------------------------------------------------------------------

    def optional(self, depth: int, obj: str, plan: Plan) -> None:
        """Set ``obj[key]`` when the field has a value (importer.builder's fill semantics)."""
        key, column, nulls, parse, on_empty, read, label = plan
        k = self.value(key)
        if column is NO_COLUMN:
            if read is None:  # a literal
                if on_empty is not OMIT:
                    self.add(depth, f"{obj}[{k}] = {self.value(on_empty)}")
                return
            self.add(depth, f"value = {self.value(read)}(record)")
            self.add(depth, "if value is not OMIT:")
            self.add(depth + 1, f"{obj}[{k}] = value")
            return
        self.add(depth, f"raw = get({self.value(column)})")
        self.add(depth, "if raw.__class__ is str:")
        self.add(depth + 1, "raw = raw.strip()")
        if on_empty is OMIT:
            filled = "raw and raw not in " + self.value(nulls) if nulls else "raw"
            self.add(depth + 1, f"if {filled}:")
        else:
            self.add(depth + 1, f"if {self._empty(nulls)}:")
            self.add(depth + 2, f"{obj}[{k}] = {self.value(on_empty)}")
            self.add(depth + 1, "else:")
        if parse is None:
            self.add(depth + 2, f"{obj}[{k}] = raw")
        else:
            self._parse(depth + 2, parse, label)
            if on_empty is OMIT:
                self.add(depth + 2, "if value is not OMIT:")
                self.add(depth + 3, f"{obj}[{k}] = value")
            else:
                empty = self.value(on_empty)
                self.add(depth + 2, f"{obj}[{k}] = {empty} if value is OMIT else value")
        self.add(depth, "else:")
        self.add(depth + 1, f"value = {self.value(read)}(record)")
        self.add(depth + 1, "if value is not OMIT:")
        self.add(depth + 2, f"{obj}[{k}] = value")

    def required(self, depth: int, plan: Plan) -> None:
        """Set ``obj[key]``, or return None when the field has no value; a conversion error is
        kept in ``error`` (it matters only if the object is built after all)."""
        key, column, nulls, parse, on_empty, read, label = plan
        k = self.value(key)
        if column is NO_COLUMN and read is None:  # a literal
            if on_empty is OMIT or on_empty is None:
                self.add(depth, "return None")
            else:
                self.add(depth, f"obj[{k}] = {self.value(on_empty)}")
            return
        self.add(depth, "try:")
        if column is NO_COLUMN:
            self.add(depth + 1, f"value = {self.value(read)}(record)")
        else:
            empty = self.value(on_empty)
            self.add(depth + 1, f"raw = get({self.value(column)})")
            self.add(depth + 1, "if raw.__class__ is str:")
            self.add(depth + 2, "raw = raw.strip()")
            self.add(depth + 2, f"if {self._empty(nulls)}:")
            self.add(depth + 3, f"value = {empty}")
            if parse is None:
                self.add(depth + 2, "else:")
                self.add(depth + 3, "value = raw")
            else:
                self.add(depth + 2, "else:")
                self._parse(depth + 3, parse, label)
                self.add(depth + 3, "if value is OMIT:")
                self.add(depth + 4, f"value = {empty}")
            self.add(depth + 1, "else:")
            self.add(depth + 2, f"value = {self.value(read)}(record)")
        self.add(depth, "except RecordError as exc:")
        self.add(depth + 1, "error = error or exc")
        self.add(depth, "else:")
        self.add(depth + 1, "if value is OMIT or value is None:")
        self.add(depth + 2, "return None")
        self.add(depth + 1, f"obj[{k}] = value")

    def _empty(self, nulls: frozenset[str]) -> str:
        return f"not raw or raw in {self.value(nulls)}" if nulls else "not raw"

    def _parse(self, depth: int, parse: Any, label: str) -> None:
        self.add(depth, "try:")
        self.add(depth + 1, f"value = {self.value(parse)}(raw)")
        self.add(depth, "except RecordError as exc:")
        where = self.value(label)
        self.add(
            depth + 1, f'raise RecordError(exc.code, f"{{{where}}}: {{exc.message}}") from None'
        )


def make_fill(plans: tuple[Plan, ...]) -> Fill:
    """``fill(obj, record)``: set each field of ``plans`` that has a value; return ``obj``.
    A value that cannot be converted raises RecordError."""
    source = _Source()
    source.add(1, "get = record.get")
    for plan in plans:
        source.optional(1, "obj", plan)
    source.add(1, "return obj")
    fill: Fill = source.function("fill", "obj, record")
    return fill


def make_build(
    required: tuple[Plan, ...],
    optional: tuple[Plan, ...],
    properties: tuple[Plan, ...],
) -> Build:
    """``build(record, base)``: the object, or None when a required field has no value."""
    source = _Source()
    source.add(1, "obj = base.copy()")
    source.add(1, "get = record.get")
    source.add(1, "error = None")
    for plan in required:
        source.required(1, plan)
    source.add(1, "if error is not None:")
    source.add(2, "raise error")
    for plan in optional:
        source.optional(1, "obj", plan)
    if properties:
        source.add(1, "properties = {}")
        for plan in properties:
            source.optional(1, "properties", plan)
        source.add(1, "if properties:")
        source.add(2, 'obj["properties"] = properties')
    source.add(1, "return obj")
    build: Build = source.function("build", "record, base")
    return build
