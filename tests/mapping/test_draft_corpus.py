"""``init-mapping`` against realistic exports (tests/mapping/corpus/): each draft equals, column by
column, the mapping a person wrote by hand beside the file; run as it is, it fails only the rows
that are really broken and delivers the rest to the sandbox."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.config import ImportConfig, ReadOptions, RetryPolicy
from importer.mapping import draft_file
from importer.runner.entry import run_import
from importer.sandbox import Sandbox

CORPUS = Path(__file__).parent / "corpus"
# file -> (rows, the lines that are really broken: the reason is in the comment)
EXPORTS = {
    "eu_crm.csv": (60, {19: "invalid_integer", 35: "invalid_email", 43: "invalid_integer"}),
    "us_customers.csv": (50, {24: "invalid_integer"}),  # orders_count 'N/A?'
    "excel_export.csv": (40, {13: "invalid_time"}),  # 31/02/2023
    "app_users.jsonl": (40, {26: "invalid_date"}),  # birthday 1988-02-30
}


def _fields(mapping: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """column -> what a field reading it says: its key, type and every option but comments."""
    fields = {}
    for key, spec in mapping["attributes"].items():
        options = {"column": spec} if isinstance(spec, str) else dict(spec)
        column = options.pop("column")
        options.setdefault("type", "string")
        for side in ("true", "false"):
            if side in options:
                options[side] = sorted(options[side])
        fields[column] = {"key": key, **options}
    return fields


def _draft(name: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    text = draft_file(str(CORPUS / name), ReadOptions())
    (tmp_path / "draft.toml").write_text(text, encoding="utf-8")
    return text, tomllib.loads(text)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_the_draft_equals_the_hand_written_mapping_column_by_column(
    name: str, tmp_path: Path
) -> None:
    _, drafted = _draft(name, tmp_path)
    by_hand = tomllib.loads((CORPUS / name).with_suffix(".toml").read_text(encoding="utf-8"))
    assert drafted["input"] == by_hand["input"]
    assert drafted["identity"] == by_hand["identity"]
    draft_fields, hand_fields = _fields(drafted), _fields(by_hand)
    for column, field in hand_fields.items():
        assert draft_fields.get(column) == field, column
    assert sorted(draft_fields) == sorted(hand_fields)
    # Consent: drafted as commented subscription groups; enabled, the states are the hand's.
    assert "subscription_groups" not in drafted
    text = _draft(name, tmp_path)[0]
    lines = [
        line[2:]
        for line in text.splitlines()
        if line.startswith(("# [[subscription_groups", "# id", "# state"))
    ]
    enabled = tomllib.loads("\n".join(lines)).get("subscription_groups", [])
    assert [g["state"] for g in enabled] == [
        g["state"] for g in by_hand.get("subscription_groups", [])
    ]


def _summary(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = orjson.loads((run_dir / "summary.json").read_bytes())
    return summary


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_the_draft_as_it_is_fails_only_the_broken_rows_and_delivers_the_rest(
    name: str, tmp_path: Path, sandbox: Sandbox
) -> None:
    _draft(name, tmp_path)
    rows, broken = EXPORTS[name]
    for dry_run in (True, False):
        run_dir = tmp_path / ("dry" if dry_run else "real")
        config = ImportConfig(
            sources=(str(CORPUS / name),),
            endpoint=sandbox.url,
            api_key="sandbox-key",
            mapping_path=tmp_path / "draft.toml",
            run_dir=run_dir,
            rate_per_minute=0,
            dry_run=dry_run,
            workers=1,
            retry=RetryPolicy(attempts=2, base_s=0.001, cap_s=0.01),
        )
        report = run_import(config)
        summary = _summary(run_dir)
        failures = [
            orjson.loads(line) for line in (run_dir / "failures.jsonl").read_bytes().splitlines()
        ]
        assert {f["line"]: f["error"] for f in failures} == broken
        assert (summary["rows_read"], summary["failed"]) == (rows, len(broken))
        assert summary["delivered"] == rows - len(broken), summary
        assert report.exit_code == 1
    assert sandbox.stats.requests > 0
