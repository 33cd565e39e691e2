"""JSONL records: one JSON object per physical line; a bad line fails alone and the run goes on.

Parsed with orjson, which already refuses NaN, Infinity and floats that overflow. Two checks it
does not make are added cheaply: nesting deeper than ``MAX_DEPTH`` (measured only when the line
holds that many brackets at all) and integers outside signed 64 bits (orjson turns those into
floats silently; only a line with a run of 19+ digits is parsed again with ``json`` to find them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

from importer.models import RowFailure, RowRef, SourceRow
from importer.read.lines import ByteLines, LineIssue, read_failure

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")

JsonlItem = SourceRow | RowFailure


class _BadNumber(ValueError):
    pass


def _checked_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _BadNumber(f"integer {text[:40]} is outside signed 64 bits")
    return value


def integer_out_of_range(text: str) -> str | None:
    """Why ``text`` (JSON that orjson accepted) holds an integer outside signed 64 bits, or
    None. orjson reads such integers as floats, silently; only a run of 19+ digits can be one."""
    if not _LONG_DIGITS_TEXT.search(text):
        return None
    try:
        json.loads(text, parse_int=_checked_int)
    except _BadNumber as exc:
        return str(exc)
    except ValueError:
        pass  # orjson accepted the text; json being stricter changes nothing
    return None


def _no_constant(text: str) -> Any:
    raise _BadNumber(f"{text} is not a number JSON allows")


def json_depth(value: Any) -> int:
    """Nesting depth of containers (an empty object counts 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


class JsonlParser:
    def __init__(self, name: str, lines: ByteLines, *, encoding: str) -> None:
        self.name = name
        self._lines = lines
        self._encoding = encoding
        self._utf8 = encoding == "utf-8"  # orjson reads (and checks) UTF-8 bytes itself

    def records(self) -> Iterator[JsonlItem]:
        """Every non-blank line, then a ``truncated_input`` failure if reading broke."""
        number = 0
        for block in self._lines.blocks():
            issues = {issue.line: issue for issue in block.issues}
            number = block.first_line - 1
            for raw in block.lines:
                number += 1
                if issues and number in issues:
                    yield self._issue_failure(issues[number])
                    continue
                data = raw.strip()
                if data:
                    yield self._parse(number, data, raw)
        if self._lines.broken is not None:
            line = number + 1
            message = (
                f"{self._lines.broken}; reading stopped at line {line}: the lines before it were "
                "read, nothing after it"
            )
            yield read_failure(self.name, line, "truncated_input", message, None)

    def _parse(self, number: int, data: bytes, raw: bytes) -> JsonlItem:
        try:
            value = orjson.loads(data if self._utf8 else data.decode(self._encoding))
        except UnicodeDecodeError as exc:
            return self._fail(number, "bad_encoding", self._encoding_message(exc), raw)
        except orjson.JSONDecodeError as exc:
            return self._json_failure(number, data, raw, str(exc))
        if type(value) is not dict:
            kind = type(value).__name__.replace("NoneType", "null")
            message = f"line {number}: a JSON {kind}, not an object"
            return self._fail(number, "not_an_object", message, raw)
        if data.count(b"{") + data.count(b"[") > MAX_DEPTH and json_depth(value) > MAX_DEPTH:
            message = f"line {number}: nested deeper than {MAX_DEPTH} levels"
            return self._fail(number, "too_deep", message, raw)
        if _LONG_DIGITS.search(data):
            problem = integer_out_of_range(data.decode(self._encoding, "replace"))
            if problem is not None:
                return self._fail(number, "bad_number", f"line {number}: {problem}", raw)
        return SourceRow(RowRef(self.name, number), value)

    def _json_failure(self, number: int, data: bytes, raw: bytes, detail: str) -> RowFailure:
        if self._utf8:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                return self._fail(number, "bad_encoding", self._encoding_message(exc), raw)
        if "depth limit" in detail or "recursion" in detail:
            message = f"line {number}: nested deeper than {MAX_DEPTH} levels"
            return self._fail(number, "too_deep", message, raw)
        if "infinity" in detail or self._has_constant(data):
            message = f"line {number}: a number out of range or NaN/Infinity ({detail})"
            return self._fail(number, "bad_number", message, raw)
        return self._fail(number, "invalid_json", f"line {number}: not valid JSON: {detail}", raw)

    def _has_constant(self, data: bytes) -> bool:
        """Would the line be valid JSON but for NaN / Infinity?"""
        if not any(word in data for word in (b"NaN", b"Infinity")):
            return False
        try:
            json.loads(data.decode(self._encoding, "replace"), parse_constant=_no_constant)
        except _BadNumber:
            return True
        except (ValueError, RecursionError):
            return False
        return False

    def _encoding_message(self, exc: UnicodeDecodeError) -> str:
        bad = exc.object[exc.start : exc.end].hex(" ")
        return f"bytes {bad} at byte {exc.start + 1} are not valid {self._encoding}"

    def _fail(self, number: int, code: str, message: str, raw: bytes) -> RowFailure:
        if code == "bad_encoding":
            message = f"line {number}: {message}"
        text = raw.decode(self._encoding, "replace")
        return read_failure(self.name, number, code, message, text)

    def _issue_failure(self, issue: LineIssue) -> RowFailure:
        return read_failure(self.name, issue.line, issue.code, issue.message, issue.text)
