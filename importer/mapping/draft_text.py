"""The text of an ``init-mapping`` draft: TOML lines, each with a comment saying what was seen.

Values are written as TOML a person would type (``{ column = "Birthday", type = "date", format
= "%d.%m.%Y" }``); a suggestion the draft does not make for the user is a commented line below
its entry, ready to uncomment.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

COMMENT_COLUMN = 52


def entry(key: str, value: str, note: str) -> str:
    text = f"{toml_key(key)} = {value}"
    return f"{text.ljust(COMMENT_COLUMN - 1)} # {comment(note)}"


def suggestion(key: str, options: dict[str, Any], why: str) -> list[str]:
    """A commented alternative to the entry above it."""
    return [f"#   {comment(why)}:", f"# {toml_key(key)} = {field(options)}"]


def field(options: dict[str, Any]) -> str:
    """A bare column name, or an inline table of options."""
    if list(options) == ["column"]:
        return toml_str(options["column"])
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in options.items()) + " }"


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        pairs = (f"{toml_str(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return toml_str(value.isoformat())
    return toml_str(str(value))


def toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_str(name)


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, but DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def comment(text: str) -> str:
    """Comments may not hold control characters: show them escaped."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def header(
    name: str,
    *,
    fmt: str,
    encoding: str,
    encoding_note: str,
    delimiter: str | None,
    rows: int,
    failed: int,
    nulls: list[str],
) -> list[str]:
    skipped = f" ({failed} unreadable rows skipped)" if failed else ""
    lines = [
        f"# Mapping for {comment(name)}, drafted by `braze-import init-mapping` from "
        f"{rows} sampled rows{skipped}.",
        "# Review every line before a real run; each comment says what the sample showed.",
        "# Keys on the left are Braze attribute names; the column each reads is on the right.",
        "",
        "[input]",
        entry("format", toml_str(fmt), "from the file name or --format"),
        entry("encoding", toml_str(encoding), encoding_note),
    ]
    if delimiter is not None:
        lines.append(
            entry("delimiter", toml_str(delimiter), "sniffed from the header line (or as given)")
        )
    if nulls:
        values = ", ".join(toml_str(v) for v in nulls)
        lines.append(entry("null_values", f"[{values}]", "seen in the sample; they count as empty"))
    return lines


def consent_block(column: str, states: dict[str, str], note: str) -> list[str]:
    """A subscription group read from a consent column, commented until its id is filled in."""
    state = field({"column": column, "map": states})
    return [
        f"# Consent in {comment(column)}: {comment(note)}.",
        "# Braze takes opt-ins as subscription groups: put the group's id (a UUID from Braze's",
        "# dashboard, Subscription Groups) below and uncomment. Until then it is not sent.",
        "# [[subscription_groups]]",
        '# id = { value = "SUBSCRIPTION-GROUP-UUID" }',
        f"# state = {state}",
        "",
    ]


def example_event(time: dict[str, Any] | None) -> list[str]:
    """``time``: the time column's field options (its ``format``: epoch, a pattern), if any."""
    time_line = f"time = {field(time or {'column': 'SomeTimeColumn'})}"
    return [
        "# Rows can also emit events and purchases, for example:",
        "# [[events]]",
        '# name = { value = "legacy_signup" }',
        f"# {time_line}",
    ]


def braze_shaped_note(name: str, rows: int) -> str:
    return (
        f"# {comment(name)}: all {rows} sampled lines are Braze-shaped fragments\n"
        '# ({"attributes": [...], "events": [...], "purchases": [...]}); they are sent as they\n'
        "# are, so run without --mapping. No mapping drafted.\n"
    )
