"""Proof of landing: runs into the sandbox, then ``verify`` reads the profiles back (a socket)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer import ImportConfig, Locked, RetryPolicy, run_import, verify_run
from importer.filelock import FileLock, Holder
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from tests.end_to_end.test_resume import _cli, _env, _interrupt_until_done

KEY = "sandbox-key"
FIXTURES = Path(__file__).parents[2] / "fixtures"
# Several rows per user: each attribute's last value must win, each visit must count.
MAPPING = """
[identity]
external_id = "id"
[attributes]
points = { column = "points", type = "integer" }
plan = "plan"
tags = { column = "tags", type = "array", separator = "|" }
seen_at = { column = "when", type = "time" }
[[events]]
name = { value = "visit" }
time = "when"
"""
PLANS = ("basic", "gold", "student")


def _data(tmp_path: Path, rows: int, users: int) -> Path:
    """``rows`` rows over ``users`` users (a user's later rows change its values), with event
    times of the last hours: inside the export's window, so they are checked too."""
    start = time.time() - rows - 3600
    lines = ["id,points,plan,tags,when"]
    for n in range(rows):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + n))
        tags = "|".join(sorted({PLANS[n % 3], PLANS[n % 2]}))
        lines.append(f"u{n % users},{n},{PLANS[n % 3]},{tags},{when}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    return path


def _import(tmp_path: Path, sandbox: Sandbox, source: Path, mapping: Path) -> Path:
    config = ImportConfig(
        sources=(str(source),),
        endpoint=sandbox.url,
        api_key=KEY,
        mapping_path=mapping,
        run_dir=tmp_path / "run",
        rate_per_minute=0,
        concurrency=4,
        retry=RetryPolicy(attempts=4, base_s=0.001, cap_s=0.01),
    )
    report = run_import(config)
    assert report.exit_code == 0, report.stats.as_summary()
    return report.run_dir


def _verify_cli(run_dir: Path, *extra: str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    done = subprocess.run(
        _cli("verify", str(run_dir), "--settle", "0", "--rate", "6000", "--output", "json", *extra),
        env=_env(),
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    summary = orjson.loads(done.stdout) if done.stdout.strip() else {}
    lines = (run_dir / "verify.jsonl").read_bytes().splitlines() if summary else []
    return done.returncode, summary, [orjson.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("source", "mapping"), [("crm.csv", "crm.toml"), ("crm.jsonl", "crm-jsonl.toml")]
)
def test_the_fixtures_imported_then_verify_all_every_user_matches(
    tmp_path: Path, source: str, mapping: str
) -> None:
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run_dir = _import(tmp_path, sandbox, FIXTURES / source, FIXTURES / mapping)
        code, summary, lines = _verify_cli(run_dir, "--all")
    assert (code, lines) == (0, [])
    assert summary["users_checked"] == summary["matched"] == 40
    assert summary["fields_compared"] > 400  # 11 attributes and more per user
    # The fixtures' events and orders are years old: outside the export's window, not failures.
    assert summary["fields_skipped"]["outside_export_window"] > 0
    assert (run_dir / "verify.json").stat().st_mode & 0o777 == 0o600


def test_after_sigkill_and_resume_every_user_matches(tmp_path: Path) -> None:
    _data(tmp_path, 3_000, users=1_000)
    settings = SandboxSettings(profiles=True, latency_ms=5, p_500=0.02, p_drop=0.02, seed=13)
    with sandbox_in_thread(settings) as sandbox:
        kills, _ = _interrupt_until_done(
            tmp_path,
            sandbox,
            signal.SIGKILL,
            3,
            random.Random(13),
            *["--rate", "6000", "--concurrency", "4", "--batch-mode", "mau50", "--workers", "1"],
        )
        code, summary, lines = _verify_cli(tmp_path / "run", "--all")
    assert kills >= 1
    assert (code, lines) == (0, [])
    assert summary["users_checked"] == summary["matched"] == 1_000
    assert summary["rows_delivered"] == 3_000
    # Per user: points, plan, tags, seen_at and the visit event, all compared.
    assert summary["fields_compared"] == 5_000 and summary["fields_skipped"] == {}


def test_a_lost_attribute_is_reported_for_exactly_its_users(tmp_path: Path) -> None:
    source = _data(tmp_path, 2_000, users=2_000)
    settings = SandboxSettings(profiles=True, p_lose_attribute=0.01, seed=5)
    with sandbox_in_thread(settings) as sandbox:
        run_dir = _import(tmp_path, sandbox, source, tmp_path / "map.toml")
        code, summary, lines = _verify_cli(run_dir, "--all")
        lost = sandbox.lost_attributes()
    assert code == 1
    assert 5 <= len(lost) <= 40
    assert {(line["user"], line["field"]) for line in lines} == set(lost.items())
    assert {line["reason"] for line in lines} == {"missing"}
    assert summary["mismatched"] == summary["users_rechecked"] == len(lost)
    assert summary["matched"] == 2_000 - len(lost) and summary["missing"] == 0


def test_altered_profiles_are_reported_field_by_field(tmp_path: Path) -> None:
    source = _data(tmp_path, 300, users=100)
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run_dir = _import(tmp_path, sandbox, source, tmp_path / "map.toml")
        profiles = sandbox.profiles
        u1, u2, u3 = (profiles.get(f"external_id:u{n}") for n in (1, 2, 3))
        assert u1 is not None and u2 is not None and u3 is not None
        u1.attributes["plan"] = "platinum"
        u1.attributes["points"] = float(u1.attributes["points"])  # same number: still a match
        u2.attributes["tags"] = [*u2.attributes["tags"], "extra"]
        del u2.attributes["seen_at"]
        u3.events["visit"][0] -= 1  # Braze holds fewer visits than were delivered
        profiles._by_key.pop("external_id:u4")  # never made
        report = verify_run(run_dir, api_key=KEY, sample=None, settle_s=0, rate_per_minute=6000)
    lines = [orjson.loads(line) for line in (run_dir / "verify.jsonl").read_bytes().splitlines()]
    found = {(line["user"], line["field"], line["reason"]) for line in lines}
    assert found == {
        ("external_id:u1", "plan", "different"),
        ("external_id:u2", "tags", "different"),
        ("external_id:u2", "seen_at", "missing"),
        ("external_id:u3", "event:visit", "count below delivered"),
        ("external_id:u4", "(profile)", "missing"),
    }
    assert (report.mismatched, report.missing, report.exit_code) == (3, 1, 1)
    assert report.matched == 96


def test_a_sample_checks_the_users_it_names_and_no_more(tmp_path: Path) -> None:
    source = _data(tmp_path, 500, users=500)
    with sandbox_in_thread(SandboxSettings(profiles=True, p_lose_attribute=0.3, seed=2)) as sandbox:
        run_dir = _import(tmp_path, sandbox, source, tmp_path / "map.toml")
        first = verify_run(
            run_dir, api_key=KEY, sample=40, seed=9, settle_s=0, rate_per_minute=6000
        )
        lines = (run_dir / "verify.jsonl").read_bytes()
        again = verify_run(
            run_dir, api_key=KEY, sample=40, seed=9, settle_s=0, rate_per_minute=6000
        )
    assert first.users_checked == 40 and first.requests == 1 + 1  # 40 users, then the re-ask
    assert first.mismatched > 0
    assert (run_dir / "verify.jsonl").read_bytes() == lines  # the same sample again
    timings = {"reading_s": 0, "asking_s": 0, "elapsed_s": 0}
    assert again.as_summary() | timings == first.as_summary() | timings


def test_a_changed_source_or_mapping_is_refused_with_exit_2(tmp_path: Path) -> None:
    source = _data(tmp_path, 20, users=20)
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run_dir = _import(tmp_path, sandbox, source, tmp_path / "map.toml")
        original = source.read_bytes()
        with source.open("a", encoding="utf-8") as handle:
            handle.write("u99,1,gold,gold,2024-01-01T00:00:00Z\n")
        code, summary, _ = _verify_cli(run_dir, "--all")
        assert (code, summary) == (2, {})
        source.write_bytes(original)
        assert _verify_cli(run_dir, "--all")[0] == 0
        mapping = tmp_path / "map.toml"
        mapping.write_text(MAPPING.replace('plan = "plan"', 'plan = "tags"'), encoding="utf-8")
        assert _verify_cli(run_dir, "--all")[0] == 2


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    source = _data(tmp_path, 10, users=10)
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run_dir = _import(tmp_path, sandbox, source, tmp_path / "map.toml")
        lock = FileLock(run_dir / ".lock", guarded=run_dir, what="run directory")
        lock.acquire(Holder.this_process("a resume"))
        try:
            with pytest.raises(Locked, match="in use"):
                verify_run(run_dir, api_key=KEY, settle_s=0)
        finally:
            lock.release()
        assert verify_run(run_dir, api_key=KEY, settle_s=0, rate_per_minute=6000).exit_code == 0
