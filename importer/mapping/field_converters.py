"""What a field's values become: the converter its type and options choose (and a faster twin
for text cells), and a literal ``value`` or ``default``, converted once when the mapping loads.

Every mistake is reported through ``MappingDoc.fail`` with the key path (file, line, column).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Any

from importer.errors import RecordError
from importer.mapping import time_formats, times, values
from importer.mapping.document import KeyPath, MappingDoc, did_you_mean
from importer.mapping.toml_checks import expect
from importer.mapping.values import OMIT, ValueConverter
from importer.read import MAX_DEPTH, json_depth

Converters = tuple[ValueConverter | None, ValueConverter | None]


def value_converters(
    doc: MappingDoc, where: KeyPath, kind: str, options: dict[str, Any]
) -> Converters:
    """The value converter of ``kind`` and its faster twin for text cells (None: the same)."""
    if kind == "integer":
        return values.to_integer, values.integer_text
    if kind == "float":
        return values.to_float, values.float_text
    if kind == "json":
        return values.to_json, None
    if kind == "boolean":
        true = _words(doc, (*where, "true"), options.get("true"), values.DEFAULT_TRUE)
        false = _words(doc, (*where, "false"), options.get("false"), values.DEFAULT_FALSE)
        both = {word.casefold() for word in true} & {word.casefold() for word in false}
        if both:
            doc.fail(where, f"{sorted(both)[0]!r} is listed as both true and false")
        return values.boolean_converter(true, false), values.boolean_text_parser(true, false)
    if kind == "array":
        separator = expect(doc, (*where, "separator"), options.get("separator", "|"), str)
        if not separator:
            doc.fail((*where, "separator"), "the separator is empty")
        return values.array_converter(separator), None
    given = options.get("format")
    if type(given) is str and given in time_formats.EPOCH_FORMATS:
        if "timezone" in options:
            doc.fail((*where, "timezone"), f"a Unix time (format {given!r}) is UTC: no timezone")
        if kind == "date":
            return time_formats.epoch_date_converter(given), None
        return time_formats.epoch_time_converter(given), None
    fmt = _format(doc, (*where, "format"), given)
    if kind == "date":
        return times.date_converter(fmt), times.date_parser(fmt)
    if kind == "time":
        zone = _zone(doc, (*where, "timezone"), options.get("timezone"))
        return times.time_converter(fmt, zone), times.time_parser(fmt, zone)
    return None, None  # string


def _words(
    doc: MappingDoc, where: KeyPath, given: Any, default: tuple[str, ...]
) -> tuple[str, ...]:
    if given is None:
        return default
    words = expect(doc, where, given, list, "an array of strings")
    if not words or any(type(word) is not str or not word.strip() for word in words):
        doc.fail(where, "expected a non-empty array of non-empty strings")
    return tuple(word.strip() for word in words)


def _format(doc: MappingDoc, where: KeyPath, given: Any) -> str | None:
    if given is None:
        return None
    fmt = expect(doc, where, given, str, 'a strptime format such as "%d.%m.%Y"')
    if "%" not in fmt:
        hint = did_you_mean(fmt, tuple(time_formats.EPOCH_FORMATS)) or (
            '; write e.g. "%Y-%m-%d" for 2024-05-31, or "epoch" / "epoch_ms" for Unix times'
        )
        doc.fail(where, f"format {fmt!r} has no strptime codes{hint}")
    try:
        dt.datetime.strptime("", fmt)
    except ValueError as exc:
        if "does not match" not in str(exc):
            doc.fail(where, f"bad strptime format {fmt!r}: {exc}")
    return str(fmt)


def _zone(doc: MappingDoc, where: KeyPath, given: Any) -> dt.tzinfo:
    if given is None:
        return dt.UTC
    name = expect(doc, where, given, str, 'a time zone name such as "Europe/Berlin"')
    if name in ("UTC", "Etc/UTC"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(name, zoneinfo.available_timezones())
        doc.fail(
            where,
            f"unknown time zone {name!r}{hint or ' (use an IANA name such as Europe/Berlin)'}",
        )


def _plain(value: Any) -> Any:
    """A TOML literal as JSON would have it: dates and times become ISO 8601 text."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if type(value) is list:
        return [_plain(item) for item in value]
    if type(value) is dict:
        return {key: _plain(item) for key, item in value.items()}
    return value


def _finite(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_finite(item) for item in value)
    if type(value) is dict:
        return all(_finite(item) for item in value.values())
    return True


def convert_literal(
    doc: MappingDoc, where: KeyPath, value: Any, convert: ValueConverter | None
) -> Any:
    """A ``value`` or ``default`` converted once, at load time; None: sent as written."""
    plain = _plain(value)
    if type(plain) in (list, dict) and json_depth(plain) > MAX_DEPTH:
        doc.fail(where, f"the literal is nested deeper than {MAX_DEPTH} levels")
    if not _finite(plain):  # TOML has nan and inf; JSON does not (they would go out as null)
        doc.fail(where, "the literal holds nan or inf, which JSON cannot carry")
    if convert is None:
        return plain
    try:
        result = convert(plain.strip() if type(plain) is str else plain)
    except RecordError as exc:
        doc.fail(where, exc.message)
    if result is OMIT:
        doc.fail(where, "the literal is empty")
    return result
