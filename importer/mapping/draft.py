"""``init-mapping``: sample a source, and draft the commented mapping TOML a person would write.

One type per column, settled on the whole sample (importer.mapping.column_types); names as
Braze likes them, standard attributes where the values fit (importer.mapping.naming); the text
in importer.mapping.draft_text. The identifier: a column named ``external_id`` / ``braze_id``,
else an id-like name (``id``, ``CustomerNo``, ``user_id`` …) whose sampled values are all
present and unique, else ``email``, ``phone``. Every line says what was seen, so a user can judge
it; what the draft will not decide for the user (a state's map) is a comment beside the line.
A consent column (Y/N, opt-in/opt-out, subscribed/unsubscribed) becomes a
``[[subscription_groups]]`` table with its map, commented until the user puts in the group id.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from importer.config import ReadOptions
from importer.errors import InputError
from importer.mapping import draft_text as text
from importer.mapping.column_types import guess_type
from importer.mapping.column_words import consent_map
from importer.mapping.guess import Guess
from importer.mapping.naming import (
    STANDARD,
    fits_standard,
    gender_map,
    snake_case,
    standard_for,
    unique_key,
)
from importer.models import RowFailure, SourceRow, record_dict
from importer.read import Source, open_source

NULL_TOKENS = ("NULL", "null", "\\N", "N/A", "n/a", "NaN", "None", "#N/A")
_OWNER = r"(customer|cust|client|user|member|contact|account|person|crm|legacy|kunden)"
_NUMBER = r"(id|no|nr|num|number|nummer)"
_ID_NAME = re.compile(rf"{_OWNER}?_?{_NUMBER}|{_NUMBER}_{_OWNER}")  # CustomerNo, ID client
_CONSENT_NAME = re.compile(
    r"newsletter|opt_?in|opt_?out|consent|subscri|marketing|einwilligung|werbung|permission|abonn"
)


@dataclass(frozen=True, slots=True)
class ColumnSample:
    name: str
    total: int  # rows sampled
    filled: int  # rows where the column has a value
    unique: bool  # every present value differs
    guess: Guess

    @property
    def key(self) -> str:
        return snake_case(self.name)

    def seen(self) -> str:
        return f"{self.filled}/{self.total} non-empty, {self.guess.note}"


@dataclass(frozen=True, slots=True)
class Sample:
    records: list[dict[str, Any]]
    failures: list[RowFailure]


def sample(source: Source, limit: int) -> Sample:
    """The first ``limit`` readable rows of ``source`` and the failures met on the way."""
    records: list[dict[str, Any]] = []
    failures: list[RowFailure] = []
    for item in source.rows():
        if isinstance(item, SourceRow):
            records.append(record_dict(item.record))
            if len(records) >= limit:
                break
        else:
            failures.append(item)
    return Sample(records, failures)


def draft_mapping(source: Source, sample_rows: int = 1000) -> str:
    """A commented mapping TOML for ``source``, drafted from its first ``sample_rows`` rows."""
    return _draft(source, sample(source, sample_rows))


def draft_file(name: str, options: ReadOptions, sample_rows: int = 1000) -> str:
    """``draft_mapping`` for the file ``name``. With no encoding given, a file UTF-8 cannot read
    (its header, or a sampled line) is read as cp1252 — Excel's "CSV" on Windows — and the
    draft says so."""
    if options.encoding is not None or name == "-":
        with open_source(name, options) as source:
            return draft_mapping(source, sample_rows)
    try:
        with open_source(name, replace(options, encoding="utf-8")) as source:
            taken = sample(source, sample_rows)
            undecoded = sum(1 for failure in taken.failures if failure.error == "bad_encoding")
            if not undecoded:
                return _draft(source, taken)
            why = f"{undecoded} sampled lines are not UTF-8"
    except InputError as exc:
        if "not valid utf-8" not in str(exc):
            raise
        why = "the header is not UTF-8"
    with open_source(name, replace(options, encoding="cp1252")) as source:
        note = f"{why}: read as cp1252 (Excel on Windows); check the accents below"
        return _draft(source, sample(source, sample_rows), note)


def _draft(source: Source, taken: Sample, encoding_note: str = "") -> str:
    records = taken.records
    if source.format == "jsonl" and records and all(_braze_shaped(r) for r in records):
        return text.braze_shaped_note(source.name, len(records))
    names = [n for n in (source.header or ()) if n.strip()] or _keys(records)  # blanks unread
    nulls = sorted(
        {v for r in records for v in r.values() if isinstance(v, str) and v in NULL_TOKENS}
    )
    columns = _columns(names, records, set(nulls), source.delimiter)
    identity, why = _identity(columns)
    lines = text.header(
        source.name,
        fmt=source.format,
        encoding=source.encoding,
        encoding_note=encoding_note or _encoding_note(source.encoding),
        delimiter=source.delimiter,
        rows=len(records),
        failed=len(taken.failures),
        nulls=nulls,
    )
    lines += ["", "[identity]", text.entry(identity[0], text.toml_str(identity[1].name), why), ""]
    consent = {c.name: states for c in columns if (states := _consent(c)) and c is not identity[1]}
    attributes = [c for c in columns if c.name not in consent]
    lines += ["[attributes]", *_attribute_lines(attributes, identity[1]), ""]
    for column in columns:
        if column.name in consent:
            lines += text.consent_block(column.name, consent[column.name], column.seen())
    times = [c for c in columns if c.guess.type == "time"]
    lines += text.example_event(_event_time(times[0]) if times else None)
    return "\n".join(lines) + "\n"


def _event_time(column: ColumnSample) -> dict[str, Any]:
    """The example event's ``time``: the column, read as its attribute field reads it (an epoch
    column needs its ``format``, or every row fails ``invalid_time``)."""
    options = {k: v for k, v in column.guess.field_options().items() if k != "type"}
    return {"column": column.name, **options}


def _encoding_note(encoding: str) -> str:
    if encoding == "utf-8":
        return "a UTF-8 BOM is stripped; Excel exports are often cp1252"
    return "as given"


def _keys(records: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _braze_shaped(record: dict[str, Any]) -> bool:
    return bool(record) and set(record) <= {"attributes", "events", "purchases"}


def _columns(
    names: list[str], records: list[dict[str, Any]], nulls: set[str], delimiter: str | None
) -> list[ColumnSample]:
    """Every column's sample; dates that read both ways follow a column that told the order."""
    present = {name: _present(name, records, nulls) for name in names}
    columns = [
        _column(name, len(records), values, guess_type(values, name=key, delimiter=delimiter))
        for name, values in present.items()
        for key in (snake_case(name),)
    ]
    told = Counter(
        c.guess.day_first
        for c in columns
        if c.guess.day_first is not None and not c.guess.ambiguous
    )
    if told:
        day_first = told.most_common(1)[0][0]
        because = f"as the file's other dates are {'day' if day_first else 'month'}-first"
    elif delimiter == ";":
        day_first, because = True, "as a semicolon-separated export is usually European"
    else:
        return columns
    for i, column in enumerate(columns):
        if column.guess.ambiguous:
            guess = column.guess
            if guess.day_first != day_first:
                guess = guess_type(
                    present[column.name], name=column.key, delimiter=delimiter, day_first=day_first
                )
            columns[i] = replace(column, guess=replace(guess, note=f"{guess.note} ({because})"))
    return columns


def _present(name: str, records: list[dict[str, Any]], nulls: set[str]) -> list[Any]:
    values = []
    for record in records:
        value = record.get(name)
        if isinstance(value, str):
            value = value.strip()
            if value in nulls:
                value = ""
        if value is not None and value != "":
            values.append(value)
    return values


def _column(name: str, total: int, values: list[Any], guess: Guess) -> ColumnSample:
    keys = [json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for v in values]
    unique = len(set(map(str, keys))) == len(keys)
    return ColumnSample(name, total, len(values), unique, guess)


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
            if standard_for(column.key) == kind:
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
        key, options, note = _attribute(column, taken)
        lines.append(text.entry(key, text.field(options), note))
        if column.guess.suggest is not None and key not in STANDARD:
            suggested = {**options, "column": column.name, "map": column.guess.suggest}
            lines += text.suggestion(key, suggested, "to send the states as other words")
    return lines


def _consent(column: ColumnSample) -> dict[str, str] | None:
    """The state map of a consent column (Y/N, opt-in/opt-out, subscribed/unsubscribed, a JSON
    boolean named like consent); None for any other column."""
    named = _CONSENT_NAME.search(column.key) is not None
    if column.guess.type == "boolean" and column.guess.distinct is None and named:
        return {"true": "subscribed", "false": "unsubscribed"}  # JSON booleans
    if column.guess.type not in ("boolean", "string"):
        return None
    return consent_map(column.guess.distinct, named and column.guess.type == "boolean")


def _attribute(column: ColumnSample, taken: set[str]) -> tuple[str, dict[str, Any], str]:
    """The key, the field's options and the comment for one column."""
    guess = column.guess
    options: dict[str, Any] = {"column": column.name}
    note = column.seen()
    standard = standard_for(column.key)
    if standard is None and guess.looks == "email" and "email" not in taken:
        standard = "email"  # e-mail addresses under any name
    if standard is not None and standard not in taken and fits_standard(standard, guess):
        taken.add(standard)
        if standard == "dob":
            options.update(type="date", **({"format": guess.format} if guess.format else {}))
        elif standard == "gender":
            codes = gender_map(guess.distinct or ()) or {}  # None ruled out by fits_standard
            if codes:
                options["map"] = codes
                note += "; mapped to Braze's M/F/O/N/P"
            if "" in codes.values():
                note += " (Braze has no 'unknown': such cells count as empty, nothing is sent)"
        return standard, options, f"Braze standard attribute; {note}"
    if standard in taken:
        note += f"; Braze's {standard} is read from another column: a custom attribute"
    elif standard is not None:
        note += f"; named like Braze's {standard}, but not values it takes: a custom attribute"
    options.update(guess.field_options())
    if guess.suggest is not None:
        note += f"; {len(guess.suggest)} values like a state: a map to other words is suggested"
    return unique_key(column.key, taken), options, note
