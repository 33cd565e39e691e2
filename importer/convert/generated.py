"""A function generated as Python source: its lines, the values its closure holds, and the
lines of one field's check (importer.convert.checks), which the mapping's code
(importer.convert.codegen) fuses where it sets a value and a whole object's check runs after
building it.

No value enters the source as text: each is a closure variable ``c<n>``; the source is made
only of fixed templates and our own integers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from importer.errors import RecordError
from importer.mapping import OMIT

Columns = Mapping[str, int]  # column name -> position in a CSV row
PASSED_KEPT = 4096  # values remembered per check; a unique column (emails) stops at this
_OPERATION_KEYS = frozenset({"add", "remove"})

# A field's check: the fields of importer.convert.checks.FieldCheck (key, shortest, longest,
# check, passed, items).
Guard = tuple[str, int, int, Any, set[Any], bool]


class Suspect(Exception):
    """A value set by fused code failed its inline check: the row is converted again by the
    general code (the objects first, then their checks), which finds the violation it reports."""


class GeneratedSource:
    """Lines of one generated function and the values its closure holds."""

    def __init__(self, columns: Columns | None) -> None:
        self.columns = columns
        self.data = "record" if columns is None else "cells"
        self.lines: list[str] = []
        self.values: list[Any] = []
        if columns is None:
            self.add(1, "get = record.get")

    def value(self, value: Any) -> str:
        self.values.append(value)
        return f"c{len(self.values) - 1}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, name: str, parameters: str) -> Callable[..., Any]:
        names = ", ".join(f"c{n}" for n in range(len(self.values)))
        text = "\n".join(
            [f"def _make(OMIT, RecordError, {names}):", f"    def {name}({parameters}):"]
            + ["    " + line for line in self.lines]
            + [f"    return {name}"]
        )
        namespace: dict[str, Any] = {}
        exec(compile(text, f"<mapping {name}>", "exec"), namespace)
        made: Callable[..., Any] = namespace["_make"](OMIT, RecordError, *self.values)
        return made

    def check(self, depth: int, name: str, guard: Guard, failed: str, text: bool = False) -> None:
        """The lines checking the value in ``name`` as ``guard`` says, running ``failed`` (with
        the checker's answer in ``violation``) when it is broken: text of a length the rule
        always accepts, or a text or int value already passed, needs no call (``text``: the
        value is known to be text). Used by importer.convert.checks for a whole object too."""
        key, shortest, longest, checker, passed, items = guard
        k, c, p = self.value(key), self.value(checker), self.value(passed)
        call = [
            f"violation = {c}({k}, {name})",
            "if violation is not None:",
            f"    {failed}",
        ]
        remember = [*call, f"if len({p}) < {PASSED_KEPT}:", f"    {p}.add({name})"]
        known = f"{name} not in {p}"
        if shortest <= 0 <= longest:
            known = f"len({name}) > {int(longest)} and {known}"
        elif shortest <= longest:
            known = f"not {int(shortest)} <= len({name}) <= {int(longest)} and {known}"
        if text:
            self._lines(depth, [f"if {known}:", *(f"    {line}" for line in remember)])
            return
        lines = [f"if {name}.__class__ is str:", f"    if {known}:"]
        lines += [f"        {line}" for line in remember]
        lines += [f"elif {name}.__class__ is int:", f"    if {name} not in {p}:"]
        lines += [f"        {line}" for line in remember]
        if items:  # the check refuses such a list only for a text item over ``longest``
            lines += [
                f"elif {name}.__class__ is list:",
                f"    for item in {name}:",
                f"        if item.__class__ is str and len(item) > {int(longest)}:",
                *(f"            {line}" for line in call),
                "            break",
                # an object is checked only if it reads as an operation (``{"inc": n}``,
                # ``{"add": [...]}``): any other is a nested attribute, which always passes
                f"elif {name}.__class__ is dict:",
                f'    if ("inc" in {name} and len({name}) == 1) or (',
                f"        {name} and {name}.keys() <= {self.value(_OPERATION_KEYS)}",
                "    ):",
                *(f"        {line}" for line in call),
            ]
        lines += ["else:", *(f"    {line}" for line in call)]
        self._lines(depth, lines)

    def _lines(self, depth: int, lines: list[str]) -> None:
        for line in lines:
            self.add(depth, line)
