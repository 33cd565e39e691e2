"""``init-mapping``: sample a source, and draft a commented mapping TOML from what it holds.

One type per column, settled on the sample (a value that breaks a type rules it out): leading
zeros or a leading ``+`` keep text; ISO dates -> ``date``, ISO timestamps -> ``time``; a few common
day-first / month-first patterns -> the same with ``format``; integers, decimals, yes/no words.
The identifier: a column named ``external_id`` / ``braze_id``, else an id-like name (``id``,
``CustomerNo``, ``user_id`` …) whose sampled values are all present and unique, else ``email``,
``phone``. The draft is a starting point: every line says what was seen, so a user can judge it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from importer.mapping.column_types import Guess, guess_type
from importer.models import SourceRow, record_dict
from importer.read import Source

NULL_TOKENS = ("NULL", "null", "\\N", "N/A", "n/a", "NaN", "None", "#N/A")
_ID_NAME = re.compile(
    r"(customer|cust|client|user|member|contact|account|person|crm|legacy|kunden)?_?"
    r"(id|no|nr|num|number|nummer)"
)
STANDARD: dict[str, tuple[str, ...]] = {
    "first_name": ("first_name", "firstname", "fname", "given_name", "forename", "vorname"),
    "last_name": ("last_name", "lastname", "lname", "surname", "family_name", "nachname"),
    "email": ("email", "e_mail", "email_address", "emailaddress", "mail"),
    "phone": ("phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "telephone"),
    "dob": ("dob", "birthday", "birth_date", "birthdate", "date_of_birth", "geburtsdatum"),
    "gender": ("gender", "sex"),
    "country": ("country", "country_code"),
    "home_city": ("city", "home_city", "town"),
    "language": ("language", "lang"),
    "time_zone": ("time_zone", "timezone", "tz"),
}
GENDER_WORDS = {
    **dict.fromkeys(("m", "male", "man", "mann", "männlich"), "M"),
    **dict.fromkeys(("f", "w", "female", "woman", "frau", "weiblich"), "F"),
    **dict.fromkeys(("o", "d", "other", "diverse", "divers"), "O"),
    **dict.fromkeys(("u", "unknown"), "U"),
    **dict.fromkeys(("n", "not applicable"), "N"),
    **dict.fromkeys(("p", "prefer not to say"), "P"),
}
COMMENT_COLUMN = 52


@dataclass(frozen=True, slots=True)
class ColumnSample:
    name: str
    total: int  # rows sampled
    filled: int  # rows where the column has a value
    unique: bool  # every present value differs
    guess: Guess

    @property
    def key(self) -> str:
        return normalise(self.name)

    def seen(self) -> str:
        return f"{self.filled}/{self.total} non-empty, {self.guess.note}"


def normalise(name: str) -> str:
    return re.sub(r"[^0-9a-zäöüß]+", "_", name.strip().lower()).strip("_")


def draft_mapping(source: Source, sample_rows: int = 1000) -> str:
    """A commented mapping TOML for ``source``, drafted from its first ``sample_rows`` rows."""
    records, failed = _sample(source, sample_rows)
    if source.format == "jsonl" and records and all(_braze_shaped(r) for r in records):
        return _braze_shaped_note(source, len(records))
    names = [n for n in (source.header or ()) if n.strip()] or _keys(records)  # blanks unread
    nulls = sorted(
        {v for r in records for v in r.values() if isinstance(v, str) and v in NULL_TOKENS}
    )
    columns = [_sample_column(name, records, set(nulls)) for name in names]
    identity, why = _identity(columns)
    lines = _header_lines(source, len(records), failed, nulls)
    lines += ["", "[identity]", _entry(identity[0], _str(identity[1].name), why), ""]
    lines += ["[attributes]", *_attribute_lines(columns, identity[1]), ""]
    lines += _example_event(columns)
    return "\n".join(lines) + "\n"


def _sample(source: Source, limit: int) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    failed = 0
    for item in source.rows():
        if isinstance(item, SourceRow):
            records.append(record_dict(item.record))
            if len(records) >= limit:
                break
        else:
            failed += 1
    return records, failed


def _keys(records: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _braze_shaped(record: dict[str, Any]) -> bool:
    return bool(record) and set(record) <= {"attributes", "events", "purchases"}


def _sample_column(name: str, records: list[dict[str, Any]], nulls: set[str]) -> ColumnSample:
    values = []
    for record in records:
        value = record.get(name)
        if isinstance(value, str):
            value = value.strip()
            if value in nulls:
                value = ""
        if value is not None and value != "":
            values.append(value)
    keys = [json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for v in values]
    unique = len(set(map(str, keys))) == len(keys)
    return ColumnSample(name, len(records), len(values), unique, guess_type(values))


def _identity(columns: list[ColumnSample]) -> tuple[tuple[str, ColumnSample], str]:
    """(identifier kind, column) and why it was chosen."""
    by_key = {c.key: c for c in reversed(columns)}
    for kind in ("external_id", "braze_id"):
        for key in (kind, kind.replace("_", "")):
            if key in by_key:
                return (kind, by_key[key]), f"named {kind}; {by_key[key].seen()}"
    for column in columns:
        if _ID_NAME.fullmatch(column.key) and column.unique and column.filled == column.total:
            return ("external_id", column), f"id-like name, all present and unique; {column.seen()}"
    for kind in ("email", "phone"):
        for column in columns:
            if column.key in STANDARD[kind]:
                return (kind, column), f"named like {kind}; {column.seen()}"
    candidates = [c for c in columns if c.unique and c.filled == c.total] or columns[:1]
    if not candidates:
        return (
            "external_id",
            ColumnSample("id", 0, 0, True, guess_type([])),
        ), "GUESS: the sample shows no columns; name the identifier here"
    column = candidates[0]
    return ("external_id", column), f"GUESS: no identifier-like name, check it; {column.seen()}"


def _attribute_lines(columns: list[ColumnSample], identity: ColumnSample) -> list[str]:
    lines: list[str] = []
    taken: set[str] = set()
    for column in columns:
        if column is identity:
            continue
        standard = next((s for s, names in STANDARD.items() if column.key in names), None)
        if standard in taken or (standard == "dob" and column.guess.type not in ("date", "time")):
            standard = None
        field: dict[str, Any] = {"column": column.name}
        note = column.seen()
        if standard == "dob":
            field.update(
                type="date", **({"format": column.guess.format} if column.guess.format else {})
            )
        elif standard == "gender":
            note = _gender(column, field, note)
        elif standard is None:
            field.update(column.guess.field_options())
        if standard is not None:
            taken.add(standard)
            note = f"Braze standard attribute; {note}"
        lines.append(_entry(standard or column.name, _field(field), note))
    return lines


def _gender(column: ColumnSample, field: dict[str, Any], note: str) -> str:
    seen = column.guess.distinct
    if seen is None or set(seen) <= set("MFONPU"):
        return note
    codes = {value: GENDER_WORDS.get(value.lower()) for value in seen}
    if all(codes.values()):
        field["map"] = codes
        return f"{note}; mapped to Braze's M/F/O/N/P/U"
    return f"{note}; Braze wants M, F, O, N, P or U: add a map"


def _header_lines(source: Source, rows: int, failed: int, nulls: list[str]) -> list[str]:
    lines = [
        f"# Mapping for {_comment(source.name)}, drafted by `braze-import init-mapping` from "
        f"{rows} sampled rows{f' ({failed} unreadable rows skipped)' if failed else ''}.",
        "# Review every line before a real run; each comment says what the sample showed.",
        "",
        "[input]",
        _entry("format", _str(source.format), "from the file name or --format"),
        _entry("encoding", _str(source.encoding), _encoding_note(source.encoding)),
    ]
    if source.delimiter is not None:
        lines.append(
            _entry(
                "delimiter", _str(source.delimiter), "sniffed from the header line (or as given)"
            )
        )
    if nulls:
        values = ", ".join(_str(v) for v in nulls)
        lines.append(
            _entry("null_values", f"[{values}]", "seen in the sample; they count as empty")
        )
    return lines


def _encoding_note(encoding: str) -> str:
    if encoding == "utf-8":
        return "a UTF-8 BOM is stripped; Excel exports are often cp1252"
    return "as given"


def _example_event(columns: list[ColumnSample]) -> list[str]:
    kinds = [c.guess.type for c in columns]
    when = columns[kinds.index("time")] if "time" in kinds else None
    time_line = f"time = {_str(when.name)}" if when else 'time = "SomeTimeColumn"'
    return [
        "# Rows can also emit events and purchases, for example:",
        "# [[events]]",
        '# name = { value = "legacy_signup" }',
        f"# {time_line}",
    ]


def _braze_shaped_note(source: Source, rows: int) -> str:
    return (
        f"# {_comment(source.name)}: all {rows} sampled lines are Braze-shaped fragments\n"
        '# ({"attributes": [...], "events": [...], "purchases": [...]}); they are sent as they\n'
        "# are, so run without --mapping. No mapping drafted.\n"
    )


# -- TOML text --


def _entry(key: str, value: str, note: str) -> str:
    text = f"{_key(key)} = {value}"
    return f"{text.ljust(COMMENT_COLUMN - 1)} # {_comment(note)}"


def _field(options: dict[str, Any]) -> str:
    if list(options) == ["column"]:
        return _str(options["column"])
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in options.items()) + " }"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_str(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return _str(value.isoformat())
    return _str(str(value))


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _str(name)


def _str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, but DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _comment(text: str) -> str:
    """Comments may not hold control characters: show them escaped."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
