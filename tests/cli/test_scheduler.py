"""What a scheduler and an on-call engineer meet: one JSON answer and metrics on every exit, exit
codes that say whether to retry (75) or call a person (2, 70), the key from a file, settings from
the environment. Every run is the real CLI in a subprocess against the sandbox."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from importer.cli.main import main
from importer.cli.metrics import RunOutcome, previous_last_success, write_metrics
from importer.models import ImportStats
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

KEY = "sandbox-key"
ENDED = 1_764_691_234.567
MAPPING = (
    '[identity]\nexternal_id = "external_id"\n[attributes]\ncity = "city"\n'
    'points = { column = "points", type = "integer" }\n'
)
# Makes the journal fail as a bug would, with the key in the exception's message.
BUG = """
import os
if os.environ.get("INJECT_BUG"):
    import importer.rundir.journal as journal

    def result(self, result, ts=None):
        raise RuntimeError("a bug while holding " + os.environ["BRAZE_API_KEY"])

    journal.Journal.result = result
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    return env | extra


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "importer", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else _env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """stdout holds exactly one JSON object."""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    answer = json.loads(lines[0])
    assert isinstance(answer, dict)
    return answer


def _write(tmp_path: Path, city: str = "Berlin") -> tuple[Path, Path]:
    csv = tmp_path / "users.csv"
    csv.write_text(f"external_id,city,points\nu1,{city},1\nu2,{city},x\n", encoding="utf-8")
    mapping = tmp_path / "map.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return csv, mapping


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with sandbox_in_thread(SandboxSettings()) as running:
        yield running


def test_exit_2_writes_metrics_and_one_json_answer(tmp_path: Path) -> None:
    csv, mapping = _write(tmp_path)
    mapping.write_text(
        '[identity]\nexternal_id = "external_id"\n[attributes]\nc = { colum = "c" }\n'
    )
    metrics = tmp_path / "braze.prom"
    write_metrics(metrics, RunOutcome(ImportStats(), 0, succeeded=True, ended_at=ENDED))
    done = _cli(
        "run", str(csv), "--mapping", str(mapping), "--dry-run", "--output", "json",
        "--metrics-file", str(metrics), "--log-format", "json",
    )  # fmt: skip
    assert done.returncode == 2
    answer = _answer(done)
    assert answer["status"] == "invalid" and answer["exit_code"] == 2
    assert "colum" in answer["error"] and "\n" not in answer["error"]
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert [entry["level"] for entry in logged] == ["error"] and "colum" in logged[0]["message"]
    text = metrics.read_text(encoding="utf-8")
    assert "braze_import_exit_code 2.0\n" in text
    assert previous_last_success(metrics) == ENDED  # yesterday's success is still known


def test_a_usage_error_answers_in_json_too(tmp_path: Path) -> None:
    done = _cli("run", "x.csv", "--rate", "fast", "--output", "json")
    assert done.returncode == 2
    answer = _answer(done)
    assert answer["exit_code"] == 2 and "--rate" in answer["error"]


def test_a_locked_state_exits_75_while_the_first_run_finishes_untouched(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The first run reads stdin: it holds the state for as long as the test keeps the pipe
    open, so the second run meets the lock without any timing. (stdin is read in blocks of
    256 KiB: the first part is larger than one.)"""
    _, mapping = _write(tmp_path)
    city = "Berlin-" + "x" * 200
    rows = [f"u{n},{city},{n}\n" for n in range(2_000)]
    common = ["--mapping", str(mapping), "--state", str(tmp_path / "state.db"), "--output", "json"]
    first = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", "-", "--format", "csv", *common,
         "--endpoint", sandbox.url, "--run-dir", str(tmp_path / "first"), "--workers", "1",
         "--rate", "0", "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(BRAZE_API_KEY=KEY),
    )  # fmt: skip
    assert first.stdin is not None
    try:
        first.stdin.write("external_id,city,points\n" + "".join(rows[:1_300]))
        first.stdin.flush()
        deadline = time.monotonic() + 60
        while not (tmp_path / "first" / "run.json").exists():  # the state is locked before
            assert first.poll() is None and time.monotonic() < deadline, first.stderr
            time.sleep(0.02)
        csv, _ = _write(tmp_path)
        second = _cli(
            "run", str(csv), *common, "--endpoint", sandbox.url,
            "--run-dir", str(tmp_path / "second"), env=_env(BRAZE_API_KEY=KEY),
        )  # fmt: skip
        out, err = first.communicate("".join(rows[1_300:]), timeout=120)  # then EOF
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 75, second.stderr
    refused = _answer(second)
    assert refused["status"] == "locked" and "in use by" in refused["error"]
    assert "first" in refused["error"] and not (tmp_path / "second").exists()
    assert first.returncode == 0, err
    finished = json.loads(out)
    assert (finished["rows_read"], finished["delivered"], finished["status"]) == (
        2_000,
        2_000,
        "complete",
    )


def test_a_bug_exits_70_with_its_traceback_in_error_log(sandbox: Sandbox, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BUG, encoding="utf-8")
    csv, mapping = _write(tmp_path)
    env = _env(BRAZE_API_KEY=KEY, INJECT_BUG="1", PYTHONPATH=str(hook))
    run_dir = tmp_path / "run"
    done = _cli(
        "run", str(csv), "--mapping", str(mapping), "--endpoint", sandbox.url, "--run-dir",
        str(run_dir), "--workers", "1", "--output", "json", env=env,
    )  # fmt: skip
    assert done.returncode == 70, done.stderr
    answer = _answer(done)
    assert answer["status"] == "internal_error" and answer["exit_code"] == 70
    assert f"traceback in {run_dir / 'error.log'}" in answer["error"]
    assert "RuntimeError: a bug while holding [REDACTED]" in answer["error"]
    assert "Traceback (most recent" not in done.stderr
    assert done.stderr.splitlines()[-1].endswith("error.log")  # the last line says where
    log = (run_dir / "error.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "RuntimeError" in log
    assert stat.S_IMODE((run_dir / "error.log").stat().st_mode) == 0o600
    for path in [run_dir / "error.log", *run_dir.iterdir()]:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in done.stdout + done.stderr


def test_the_key_comes_from_a_file_and_is_never_echoed(sandbox: Sandbox, tmp_path: Path) -> None:
    csv, mapping = _write(tmp_path)
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o644)
    args = ["run", str(csv), "--mapping", str(mapping), "--endpoint", sandbox.url, "--quiet"]
    by_flag = _cli(*args, "--run-dir", str(tmp_path / "a"), "--api-key-file", str(key_file))
    assert by_flag.returncode == 1, by_flag.stderr  # u2's points fail: the key was accepted
    assert f"the API key file {key_file} is readable by group or others" in by_flag.stderr
    key_file.chmod(0o600)
    by_env = _cli(
        *args, "--run-dir", str(tmp_path / "b"), env=_env(BRAZE_API_KEY_FILE=str(key_file))
    )
    assert by_env.returncode == 1, by_env.stderr
    assert "readable" not in by_env.stderr
    for done in (by_flag, by_env):
        assert KEY not in done.stdout + done.stderr
    # a flag beats a variable: the file given on the command line wins over a wrong variable
    beaten = _cli(
        *args, "--run-dir", str(tmp_path / "c"), "--api-key-file", str(key_file),
        env=_env(BRAZE_API_KEY="wrong-key-0123456789"),
    )  # fmt: skip
    assert beaten.returncode == 1, beaten.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [("k\n", "implausibly short"), ("", "is empty"), ("sandbox key\n", "spaces or control")],
)
def test_a_bad_key_file_is_refused_without_echoing_it(
    tmp_path: Path, content: str, message: str
) -> None:
    csv, mapping = _write(tmp_path)
    key_file = tmp_path / "api-key"
    key_file.write_text(content, encoding="utf-8")
    key_file.chmod(0o600)
    done = _cli(
        "run", str(csv), "--mapping", str(mapping), "--endpoint", "http://127.0.0.1:9",
        "--api-key-file", str(key_file), "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "sandbox key" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_settings_come_from_the_environment_and_flags_beat_them(tmp_path: Path) -> None:
    csv, mapping = _write(tmp_path)
    env = _env(
        BRAZE_IMPORT_MAPPING=str(mapping),
        BRAZE_IMPORT_DRY_RUN="1",
        BRAZE_IMPORT_RUN_DIR=str(tmp_path / "from-env"),
        BRAZE_IMPORT_OUTPUT="json",
        BRAZE_IMPORT_QUIET="true",
    )
    from_env = _cli("run", str(csv), env=env)
    answer = _answer(from_env)
    assert answer["status"] == "dry-run" and answer["run_dir"] == str(tmp_path / "from-env")
    flags = _cli(
        "run", str(csv), "--run-dir", str(tmp_path / "from-flag"), "--output", "text", env=env
    )
    assert flags.returncode == 1, flags.stderr
    assert "status: dry-run" in flags.stdout and str(tmp_path / "from-flag") in flags.stdout


def test_help_names_the_variable_of_every_option() -> None:
    for command in ("run", "resume", "retry"):
        shown = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        options = re.findall(r"^\s+(--[a-z-]+)", shown.output, re.MULTILINE)
        assert len(options) > 8
        for option in options:
            if option != "--help":
                variable = "BRAZE_IMPORT_" + option[2:].replace("-", "_").upper()
                assert variable in shown.output, (command, option)
    shown = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    assert "BRAZE_API_KEY_FILE" in shown and "BRAZE_REST_ENDPOINT" in shown


def test_customer_data_holding_the_key_text_is_written_as_it_is(tmp_path: Path) -> None:
    """The key scrubbed only where a key can appear: a value or a summary key equal to it stays."""
    key = "delivered"  # also a key of summary.json
    csv, mapping = _write(tmp_path, city="delivered")
    run_dir = tmp_path / "run"
    with sandbox_in_thread(SandboxSettings(api_key=key)) as sandbox:
        done = _cli(
            "run", str(csv), "--mapping", str(mapping), "--endpoint", sandbox.url,
            "--run-dir", str(run_dir), env=_env(BRAZE_API_KEY=key),
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["delivered"] == 1 and summary["failed_by_code"] == {"invalid_integer": 1}
    (failure,) = [json.loads(x) for x in (run_dir / "failures.jsonl").read_text().splitlines()]
    assert failure["record"]["city"] == "delivered"
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert stamp.match(failure["ts"])
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        assert stamp.match(json.loads(line)["ts"])
    assert f"braze-import retry {run_dir} --only invalid_integer" in done.stdout
    assert stamp.match(done.stderr.splitlines()[0])  # no terminal: progress lines are stamped
