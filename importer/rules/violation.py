"""What a broken rule is (``Violation``), what checks one field (``Checker``), and the small
helpers every checker of ``importer.rules`` shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeGuard


class Violation(NamedTuple):
    code: str  # stable, snake_case: e.g. string_too_long, reserved_property, invalid_quantity
    message: str  # one line naming the field and the rule


# A field checker returns None when the value is fine, else the violation.
Checker = Callable[[str, Any], Violation | None]


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def utf8_len_over(text: str, limit: int) -> bool:
    # A character is at most 4 bytes in UTF-8: short strings need no encoding at all.
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def is_number(value: Any) -> TypeGuard[int | float]:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))
