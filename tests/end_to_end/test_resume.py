"""Never lose a record, never send one twice: kills, signals, resume, retry, per-user order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.models import Item, RowRef
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

KEY = "sandbox-key"
MAPPING = """
[identity]
external_id = "id"

[attributes]
points = { column = "points", type = "integer" }

[[events]]
name = { value = "visit" }
time = "when"
"""


def _data(
    tmp_path: Path, rows: int, *, users: int | None = None, bad_every: int = 0, pad: int = 0
) -> Path:
    """``pad``: characters of an unmapped column per row (a file over 2 MB is converted by
    worker processes, importer.runner.pool)."""
    lines = ["id,points,when,pad"]
    filler = "p" * pad
    for n in range(rows):
        user = f"u{n % users}" if users else f"u{n}"
        points = "12.5" if bad_every and n % bad_every == 0 else str(n)
        second = n % 60
        minute = n // 60 % 60
        hour = n // 3600
        lines.append(f"{user},{points},2024-03-01T{hour:02}:{minute:02}:{second:02}Z,{filler}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "importer", *args]


def _run_args(tmp_path: Path, url: str, *extra: str) -> list[str]:
    return _cli(
        "run",
        str(tmp_path / "data.csv"),
        "--mapping",
        str(tmp_path / "map.toml"),
        "--endpoint",
        url,
        "--run-dir",
        str(tmp_path / "run"),
        "--quiet",
        *extra,
    )


def _env() -> dict[str, str]:
    return {**os.environ, "BRAZE_API_KEY": KEY}


def _summary(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((run_dir / "summary.json").read_bytes())
    return data


def _event_keys(sandbox: Sandbox) -> Counter[tuple[str, str]]:
    return Counter((e["external_id"], e["time"]) for e in sandbox.accepted("events"))


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def _interrupt_until_done(
    tmp_path: Path, sandbox: Sandbox, sig: int, kills_wanted: int, rng: random.Random, *extra: str
) -> tuple[int, int]:
    """Start the run, send ``sig`` at random moments, resume until it completes.
    Returns (kills that landed mid-run, the most requests the sandbox had in flight at a kill)."""
    run_dir = tmp_path / "run"
    command = _run_args(tmp_path, sandbox.url, *extra)
    kills = 0
    most_in_flight = 0
    while True:
        requests_before = sandbox.stats.requests
        proc = subprocess.Popen(
            command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _wait_for(run_dir / "run.json", proc)
        while sandbox.stats.requests == requests_before and proc.poll() is None:
            time.sleep(0.005)  # signal a process that is sending, not one still importing
        if kills < kills_wanted:
            time.sleep(rng.uniform(0.05, 0.5))
            if proc.poll() is None:
                most_in_flight = max(most_in_flight, sandbox.stats.in_flight)
                proc.send_signal(sig)
                kills += 1
        _, stderr = proc.communicate(timeout=120)
        assert b"Traceback" not in stderr, stderr.decode()
        if proc.returncode == 0:
            return kills, most_in_flight
        expected = -signal.SIGKILL if sig == signal.SIGKILL else 130
        assert proc.returncode == expected, (proc.returncode, stderr.decode())
        command = _cli("resume", str(run_dir), "--quiet")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, workers: str) -> None:
    rows = 12_000
    _data(tmp_path, rows, pad=200 if workers != "1" else 0)
    settings = SandboxSettings(
        latency_ms=5,
        p_429=0.03,
        p_500=0.03,
        p_503=0.03,
        p_drop=0.03,
        p_drop_after_apply=0.0,
        p_slow=0.05,
        slow_ms=150,
        seed=11,
    )
    concurrency, per_request = 4, 25  # mau50: 25 rows of 2 objects per request
    with sandbox_in_thread(settings) as sandbox:
        kills, _ = _interrupt_until_done(
            tmp_path,
            sandbox,
            signal.SIGKILL,
            20,
            random.Random(5),
            "--rate",
            "6000",
            "--concurrency",
            str(concurrency),
            "--batch-mode",
            "mau50",
            "--workers",
            workers,
        )
        events = _event_keys(sandbox)
        attributes = {a["external_id"] for a in sandbox.accepted("attributes")}
    assert kills >= 20
    expected = {
        (f"u{n}", f"2024-03-01T{n // 3600:02}:{n // 60 % 60:02}:{n % 60:02}Z") for n in range(rows)
    }
    # Times are sent with an explicit offset; compare on the user and the instant's text prefix.
    seen = {(user, when[:19]) for user, when in events}
    assert seen == {(u, w[:19]) for u, w in expected}, "an event is missing"
    assert attributes == {f"u{n}" for n in range(rows)}
    duplicates = sum(count - 1 for count in events.values())
    assert duplicates <= kills * concurrency * per_request
    summary = _summary(tmp_path / "run")
    assert summary["status"] == "complete"
    assert summary["rows_read"] == summary["delivered"] == rows


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_stops_cleanly_and_resume_sends_no_duplicate(tmp_path: Path, workers: str) -> None:
    rows = 6_000
    _data(tmp_path, rows, pad=400 if workers != "1" else 0)
    with sandbox_in_thread(SandboxSettings(latency_ms=5, p_500=0.02, seed=3)) as sandbox:
        kills, _ = _interrupt_until_done(
            tmp_path,
            sandbox,
            signal.SIGINT,
            5,
            random.Random(9),
            "--rate",
            "6000",
            "--concurrency",
            "4",
            "--batch-mode",
            "mau50",
            "--workers",
            workers,
        )
        events = _event_keys(sandbox)
    assert kills >= 3
    assert len(events) == rows
    assert max(events.values()) == 1, "a SIGINT followed by resume sent an event twice"
    summary = _summary(tmp_path / "run")
    assert summary["rows_read"] == summary["delivered"] == rows and summary["status"] == "complete"
    # The summary covers the whole run, every attempt included.
    assert summary["objects_sent"] == {"attributes": rows, "events": rows, "purchases": 0}


def test_an_interrupted_summary_says_so_and_accounts_for_unsent_rows(tmp_path: Path) -> None:
    _data(tmp_path, 20_000)
    with sandbox_in_thread(SandboxSettings(latency_ms=5)) as sandbox:
        proc = subprocess.Popen(_run_args(tmp_path, sandbox.url, "--rate", "3000"), env=_env())
        while sandbox.stats.requests < 5 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    summary = _summary(tmp_path / "run")
    assert summary["status"] == "interrupted"
    assert summary["unsent"] > 0
    skipped = sum(summary["skipped"].values())
    assert (
        summary["rows_read"]
        == summary["delivered"] + summary["failed"] + skipped + summary["unsent"]
    )


def test_resume_refuses_a_changed_source(tmp_path: Path) -> None:
    path = _data(tmp_path, 50)
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        done = subprocess.run(_run_args(tmp_path, sandbox.url), env=_env(), check=False)
        assert done.returncode == 0
    with path.open("a") as handle:
        handle.write("u999,1,2024-03-01T00:00:00Z\n")
    resumed = subprocess.run(
        _cli("resume", str(tmp_path / "run")),
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 2
    assert "changed since the run started" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_resume_ignores_a_torn_last_line_and_sends_only_what_is_missing(tmp_path: Path) -> None:
    _data(tmp_path, 300)
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        done = subprocess.run(
            _run_args(tmp_path, sandbox.url, "--batch-mode", "mau50"), env=_env(), check=False
        )
        assert done.returncode == 0
        results = tmp_path / "run" / "results.jsonl"
        lines = results.read_bytes().splitlines(keepends=True)
        results.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # tear the last answer
        before = sandbox.stats.requests
        resumed = subprocess.run(
            _cli("resume", str(tmp_path / "run"), "--quiet"), env=_env(), check=False
        )
        assert resumed.returncode == 0
        assert sandbox.stats.requests - before == 1  # only the torn batch again
    summary = _summary(tmp_path / "run")
    assert summary["delivered"] == summary["rows_read"] == 300


def test_one_user_is_never_in_two_requests_at_once_and_the_last_row_wins(tmp_path: Path) -> None:
    rows, users = 2_000, 40
    _data(tmp_path, rows, users=users)
    with sandbox_in_thread(SandboxSettings(latency_ms=15)) as sandbox:
        done = subprocess.run(
            _run_args(
                tmp_path, sandbox.url, "--rate", "0", "--concurrency", "16", "--batch-mode", "mau50"
            ),
            env=_env(),
            check=False,
        )
        assert done.returncode == 0
        assert sandbox.stats.user_overlaps == 0, sandbox.stats.overlap_examples
        final: dict[str, int] = {}
        for obj in sandbox.accepted("attributes"):
            final[obj["external_id"]] = obj["points"]
        events = len(sandbox.accepted("events"))
    assert final == {f"u{u}": max(n for n in range(rows) if n % users == u) for u in range(users)}
    assert events == rows


def test_retry_after_fixing_the_mapping_delivers_the_failed_rows_and_nothing_else(
    tmp_path: Path,
) -> None:
    rows = 200
    _data(tmp_path, rows, bad_every=10)  # rows 0, 10, 20 ... have points 12.5
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        first = subprocess.run(_run_args(tmp_path, sandbox.url), env=_env(), check=False)
        assert first.returncode == 1
        failures = [
            orjson.loads(x) for x in (tmp_path / "run" / "failures.jsonl").read_bytes().splitlines()
        ]
        assert {f["error"] for f in failures} == {"invalid_integer"}
        delivered_before = len(sandbox.accepted("events"))
        fixed = tmp_path / "fixed.toml"
        fixed.write_text(MAPPING.replace('type = "integer"', 'type = "float"'), encoding="utf-8")
        retried = subprocess.run(
            _cli(
                "retry",
                str(tmp_path / "run"),
                "--mapping",
                str(fixed),
                "--run-dir",
                str(tmp_path / "retry"),
                "--endpoint",
                sandbox.url,
                "--quiet",
            ),
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert retried.returncode == 0, retried.stderr
        new_events = sandbox.accepted("events")[delivered_before:]
    assert sorted(e["external_id"] for e in new_events) == sorted(
        f"u{n}" for n in range(0, rows, 10)
    )
    summary = _summary(tmp_path / "retry")
    assert summary["delivered"] == rows // 10 and summary["failed"] == 0
    manifest = orjson.loads((tmp_path / "retry" / "run.json").read_bytes())
    assert manifest["retry_of"]["run_dir"] == str((tmp_path / "run").resolve())
    lines = sorted(f["line"] for f in failures)
    results = [
        orjson.loads(x) for x in (tmp_path / "retry" / "results.jsonl").read_bytes().splitlines()
    ]
    assert sorted(n for r in results for n in r["lines"][str(tmp_path / "data.csv")]) == lines


def test_on_ambiguous_fail_records_instead_of_resending_and_retry_only_picks_them(
    tmp_path: Path,
) -> None:
    _data(tmp_path, 400)
    settings = SandboxSettings(p_drop=0.3, p_drop_after_apply=1.0, seed=4)
    with sandbox_in_thread(settings) as sandbox:
        first = subprocess.run(
            _run_args(tmp_path, sandbox.url, "--on-ambiguous", "fail", "--batch-mode", "mau50"),
            env=_env(),
            check=False,
        )
        assert first.returncode == 1
        events = _event_keys(sandbox)
        assert max(events.values()) == 1  # nothing was resent
        failures = [
            orjson.loads(x) for x in (tmp_path / "run" / "failures.jsonl").read_bytes().splitlines()
        ]
        assert failures and {f["error"] for f in failures} == {"ambiguous"}
        summary = _summary(tmp_path / "run")
        assert summary["ambiguous"] >= 1
    with sandbox_in_thread(SandboxSettings()) as clean:
        retried = subprocess.run(
            _cli(
                "retry",
                str(tmp_path / "run"),
                "--only",
                "ambiguous",
                "--endpoint",
                clean.url,
                "--run-dir",
                str(tmp_path / "retry"),
                "--quiet",
            ),
            env=_env(),
            check=False,
        )
        assert retried.returncode == 0
        assert len(clean.accepted("events")) == len(failures)


def test_narrow_keeps_only_refused_objects() -> None:
    item = Item(RowRef("f", 2), {}, "u", attributes=({"a": 1},), events=({"n": 1}, {"n": 2}))
    narrowed = item.narrowed({"events": [1]})
    assert narrowed is not None
    assert narrowed.attributes == () and narrowed.events == ({"n": 2},)
    assert item.narrowed({}) is None


@pytest.mark.parametrize("mode", ["run", "resume"])
def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path: Path, mode: str) -> None:
    _data(tmp_path, 3_000)
    with sandbox_in_thread(SandboxSettings(latency_ms=20)) as sandbox:
        proc = subprocess.Popen(_run_args(tmp_path, sandbox.url, "--rate", "600"), env=_env())
        try:
            _wait_for(tmp_path / "run" / "run.json", proc)
            args = (
                _cli("resume", str(tmp_path / "run"))
                if mode == "resume"
                else _run_args(tmp_path, sandbox.url)
            )
            second = subprocess.run(args, env=_env(), capture_output=True, text=True, check=False)
        finally:
            proc.kill()
            proc.wait()
    if mode == "resume":  # the directory is busy: try again later
        assert second.returncode == 75 and "in use by" in second.stderr
    else:  # another run's directory: a person must choose another
        assert second.returncode == 2 and "not empty" in second.stderr
