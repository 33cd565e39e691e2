"""Nightly imports with --state: only deltas, never an event twice, fit for a scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

KEY = "sandbox-key"
MAPPING = """
[identity]
external_id = "id"

[attributes]
plan = "plan"
points = { column = "points", type = "integer" }
nickname = { column = "nick", empty = "null" }

[[events]]
name = { value = "order" }
time = "ordered"
[events.properties]
order_id = "order"
"""


def _export(
    path: Path, users: int, *, changed: set[int] = frozenset(), extra: set[int] = frozenset()
) -> Path:  # type: ignore[assignment]
    """One row per user and order; ``changed`` users: a new plan; ``extra`` users: a new order."""
    lines = ["id,plan,points,nick,ordered,order"]
    for n in range(users):
        plan = "pro" if n in changed else "free"
        nick = "" if n % 10 == 0 else f"nick{n}"
        lines.append(f"u{n},{plan},{n % 100},{nick},2024-01-01T00:00:00Z,o{n}")
        if n in extra:
            lines.append(f"u{n},{plan},{n % 100},{nick},2024-02-02T00:00:00Z,o{n}b")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _command(tmp: Path, url: str, source: Path, run: str, *extra: str) -> list[str]:
    """`braze-import run` of ``source`` with the mapping and the state; later flags win."""
    (tmp / "map.toml").write_text(MAPPING, encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "importer",
        "run",
        str(source),
        "--mapping",
        str(tmp / "map.toml"),
        "--endpoint",
        url,
        "--run-dir",
        str(tmp / run),
        "--state",
        str(tmp / "state.db"),
        "--quiet",
        "--output",
        "json",
        "--rate",
        "0",
        *extra,
    ]


def _import(
    tmp: Path, url: str, source: Path, run: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(tmp, url, source, run, *extra),
        env={**os.environ, "BRAZE_API_KEY": KEY},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    data: dict[str, Any] = orjson.loads(done.stdout)
    return data


def test_second_night_sends_nothing_and_a_delta_sends_only_the_delta(tmp_path: Path) -> None:
    users = 20_000
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        first = _summary(_import(tmp_path, sandbox.url, _export(tmp_path / "d1.csv", users), "r1"))
        assert first["exit_code"] == 0 and first["delivered"] == users
        requests_after_first = sandbox.stats.requests

        second = _summary(_import(tmp_path, sandbox.url, _export(tmp_path / "d2.csv", users), "r2"))
        assert second["requests"] == 0 and sandbox.stats.requests == requests_after_first
        assert second["skipped"] == {"unchanged": users}
        assert second["events_already_sent"] == users
        assert second["attributes_unchanged"] == users * 3 - users // 10 * 0

        changed, extra = set(range(0, users, 100)), set(range(50, users, 100))
        before = len(sandbox.accepted("attributes")), len(sandbox.accepted("events"))
        third = _summary(
            _import(
                tmp_path,
                sandbox.url,
                _export(tmp_path / "d3.csv", users, changed=changed, extra=extra),
                "r3",
            )
        )
        attributes = sandbox.accepted("attributes")[before[0] :]
        events = sandbox.accepted("events")[before[1] :]
    assert third["exit_code"] == 0
    assert sorted(a["external_id"] for a in attributes) == sorted(f"u{n}" for n in changed)
    assert all(set(a) == {"external_id", "plan"} and a["plan"] == "pro" for a in attributes)
    assert sorted(e["properties"]["order_id"] for e in events) == sorted(f"o{n}b" for n in extra)
    assert third["skipped"]["unchanged"] == users - len(changed)
    assert os.stat(tmp_path / "state.db").st_mode & 0o777 == 0o600


def test_worker_processes_leave_out_each_night_what_one_process_leaves_out(
    tmp_path: Path,
) -> None:
    """Over 2 MB the rows are converted (and hashed for the state) in worker processes; once
    most rows turn out unchanged they stop hashing every value, and the main process hashes
    the few rows that changed. Each night must send exactly what one process sends."""
    users = 50_000  # > 2 MB: the pool starts (importer.runner.pool.POOL_MIN_BYTES)
    changed, extra = set(range(0, users, 100)), set(range(50, users, 100))
    exports = [
        _export(tmp_path / "n1.csv", users),
        _export(tmp_path / "n2.csv", users),
        _export(tmp_path / "n3.csv", users, changed=changed, extra=extra),
    ]
    assert exports[0].stat().st_size > 2_000_000
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for workers in ("1", "2"):
        (tmp_path / "state.db").unlink(missing_ok=True)
        seen[workers] = []
        with sandbox_in_thread(SandboxSettings()) as sandbox:
            for night, export in enumerate(exports, start=1):
                before = {a: len(sandbox.accepted(a)) for a in ("attributes", "events")}
                run = f"w{workers}-n{night}"
                done = _summary(_import(tmp_path, sandbox.url, export, run, "--workers", workers))
                sent = {a: sandbox.accepted(a)[n:] for a, n in before.items()}
                seen[workers].append(
                    (
                        done["exit_code"],
                        done["skipped"],
                        done["attributes_unchanged"],
                        done["events_already_sent"],
                        done["objects_sent"],
                        sorted(
                            orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in sent["attributes"]
                        ),
                        sorted(e["properties"]["order_id"] for e in sent["events"]),
                    )
                )
    assert seen["2"] == seen["1"]
    first, second, third = seen["1"]
    assert first[1] == {} and second[1] == {"unchanged": users}
    assert third[6] == sorted(f"o{n}b" for n in extra)


def test_kill_and_resume_with_state_delivers_no_event_twice(tmp_path: Path) -> None:
    users = 6_000
    source = _export(tmp_path / "d.csv", users)
    env = {**os.environ, "BRAZE_API_KEY": KEY}
    with sandbox_in_thread(SandboxSettings(latency_ms=5)) as sandbox:
        command = _command(
            tmp_path, sandbox.url, source, "run", "--rate", "3000", "--batch-mode", "mau50"
        )
        for _ in range(4):
            before = sandbox.stats.requests
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
            while sandbox.stats.requests < before + 5 and proc.poll() is None:
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            command = [sys.executable, "-m", "importer", "resume", str(tmp_path / "run"), "--quiet"]
        done = subprocess.run(command, env=env, check=False)
        assert done.returncode == 0
        orders = Counter(e["properties"]["order_id"] for e in sandbox.accepted("events"))
        # A second night on the same file, after all the kills, sends nothing at all.
        again = _summary(_import(tmp_path, sandbox.url, source, "again"))
    assert len(orders) == users
    assert max(orders.values()) == 1, "an event was delivered twice"
    assert again["requests"] == 0


def test_a_second_run_on_the_same_state_is_refused_naming_the_first(tmp_path: Path) -> None:
    source = _export(tmp_path / "d.csv", 20_000)
    with sandbox_in_thread(SandboxSettings(latency_ms=20)) as sandbox:
        first = subprocess.Popen(
            _command(tmp_path, sandbox.url, source, "r1", "--rate", "600"),
            env={**os.environ, "BRAZE_API_KEY": KEY},
            stdout=subprocess.DEVNULL,
        )
        try:
            while sandbox.stats.requests == 0 and first.poll() is None:
                time.sleep(0.01)
            second = _import(tmp_path, sandbox.url, source, "r2")
        finally:
            first.kill()
            first.wait()
    assert second.returncode == 75  # temporary: try again later
    assert "in use by" in second.stderr and "r1" in second.stderr
    assert not (tmp_path / "r2").exists()


def test_max_failed_ratio_aborts_a_broken_export_and_resume_needs_a_higher_ratio(
    tmp_path: Path,
) -> None:
    lines = ["id,plan,points,nick,ordered,order"]
    for n in range(3_000):
        points = "broken" if n % 2 else str(n)
        lines.append(f"u{n},free,{points},,2024-01-01T00:00:00Z,o{n}")
    source = tmp_path / "broken.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        aborted = _summary(
            _import(tmp_path, sandbox.url, source, "run", "--max-failed-ratio", "0.1")
        )
        assert aborted["exit_code"] == 3 and aborted["status"] == "aborted"
        assert "max-failed-ratio" in aborted["error"]
        assert aborted["rows_read"] < 3_000
        env = {**os.environ, "BRAZE_API_KEY": KEY}
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "importer",
                "resume",
                str(tmp_path / "run"),
                "--quiet",
                "--output",
                "json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert _summary(again)["exit_code"] == 3  # the whole run still counts
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "importer",
                "resume",
                str(tmp_path / "run"),
                "--quiet",
                "--output",
                "json",
                "--max-failed-ratio",
                "0.6",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    summary = _summary(done)
    assert summary["exit_code"] == 1 and summary["status"] == "partial"
    assert (summary["rows_read"], summary["delivered"], summary["failed"]) == (3_000, 1_500, 1_500)


def test_metrics_file_and_state_inspect(tmp_path: Path, sandbox: Sandbox) -> None:
    source = _export(tmp_path / "d.csv", 300)
    metrics = tmp_path / "braze.prom"
    done = _import(tmp_path, sandbox.url, source, "run", "--metrics-file", str(metrics))
    assert _summary(done)["exit_code"] == 0
    text = metrics.read_text()
    assert "braze_import_delivered_records 300.0\n" in text
    assert 'braze_import_accepted_objects{kind="events"} 300.0' in text
    assert "braze_import_exit_code 0.0\n" in text
    assert all(line.startswith(("#", "braze_import_")) for line in text.splitlines())
    shown = subprocess.run(
        [sys.executable, "-m", "importer", "state", "inspect", str(tmp_path / "state.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    held = orjson.loads(shown.stdout)
    assert held["users"] == 300 and held["events"] == 300
    assert held["runs"][0]["label"].endswith("run")
