"""The command line as a user meets it: exit codes, one-line errors, no key, documented options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from importer.cli.main import main
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

ROOT = Path(__file__).resolve().parents[2]
KEY = "sandbox-key"


def _cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "importer", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin.decode() if stdin else None,
        timeout=60,
        check=False,
    )


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout


@pytest.fixture(scope="module")
def sandbox() -> object:
    with sandbox_in_thread(SandboxSettings()) as running:
        yield running


def _write(tmp_path: Path) -> tuple[Path, Path]:
    csv = tmp_path / "users.csv"
    csv.write_text("external_id,city,points\nu1,Berlin,1\nu2,Wien,x\nu3,,\n", encoding="utf-8")
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        '[identity]\nexternal_id = "external_id"\n[attributes]\ncity = "city"\n'
        'points = { column = "points", type = "integer" }\n',
        encoding="utf-8",
    )
    return csv, mapping


def test_run_prints_the_summary_and_exits_1_when_a_row_failed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    csv, mapping = _write(tmp_path)
    done = _cli(
        "run",
        str(csv),
        "--mapping",
        str(mapping),
        "--endpoint",
        sandbox.url,
        "--run-dir",
        str(tmp_path / "run"),
        env={"BRAZE_API_KEY": KEY},
    )
    _no_traceback(done)
    assert done.returncode == 1, done.stderr
    assert "rows read: 3 = delivered 1 + failed 1 + skipped 1" in done.stdout
    assert "exit 1" in done.stdout and str(tmp_path / "run") in done.stdout


def test_without_a_mapping_the_identifier_column_is_found(sandbox: Sandbox, tmp_path: Path) -> None:
    csv, _ = _write(tmp_path)
    done = _cli(
        "run",
        str(csv),
        "--endpoint",
        sandbox.url,
        "--api-key",
        KEY,
        "--run-dir",
        str(tmp_path / "run"),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "delivered 2 + failed 0 + skipped 1 (1 no_data)" in done.stdout


def test_a_bad_mapping_is_one_line_with_location_and_exit_2(tmp_path: Path) -> None:
    csv, mapping = _write(tmp_path)
    mapping.write_text(
        '[identity]\nexternal_id = "external_id"\n[attributes]\ncity = { colum = "city" }\n'
    )
    done = _cli("run", str(csv), "--mapping", str(mapping), "--dry-run")
    _no_traceback(done)
    assert done.returncode == 2
    assert str(mapping) in done.stderr and "colum" in done.stderr and "column" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_wrong_key_exits_3_and_is_never_printed(sandbox: Sandbox, tmp_path: Path) -> None:
    csv, mapping = _write(tmp_path)
    secret = "wrong-key-0123456789"
    done = _cli(
        "run",
        str(csv),
        "--mapping",
        str(mapping),
        "--endpoint",
        sandbox.url,
        "--run-dir",
        str(tmp_path / "run"),
        "--verbose",
        env={"BRAZE_API_KEY": secret},
    )
    _no_traceback(done)
    assert done.returncode == 3
    assert secret not in done.stdout + done.stderr
    for path in (tmp_path / "run").iterdir():
        assert secret.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--endpoint", "http://rest.iad-01.braze.com"], "in clear"),
        (["--endpoint", "US-09"], "instance"),
        ([], "endpoint"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_sent(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    csv, _ = _write(tmp_path)
    done = _cli("run", str(csv), *args, env={"BRAZE_API_KEY": KEY})
    _no_traceback(done)
    assert done.returncode == 2 and fragment in done.stderr


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_usage_error_shows_a_url_without_its_credentials(tmp_path: Path, output: str) -> None:
    """``resume RUN URL`` (--source forgotten): click quotes the extra argument it refuses."""
    url = "https://u:LONGPASSWORD1@host/a.csv?X-Amz-Signature=SIGVALUE123"
    done = _cli("resume", str(tmp_path), url, "--output", output, env={"BRAZE_API_KEY": KEY})
    _no_traceback(done)
    assert done.returncode == 2 and "unexpected extra argument" in done.stderr
    assert "https://***@host/a.csv?X-Amz-Signature=***" in done.stderr
    if output == "json":
        assert "https://***@host/a.csv" in json.loads(done.stdout)["error"]
    assert "LONGPASSWORD1" not in done.stdout + done.stderr
    assert "SIGVALUE123" not in done.stdout + done.stderr


def test_stdin_is_a_source(sandbox: Sandbox, tmp_path: Path) -> None:
    done = _cli(
        "run",
        "-",
        "--format",
        "csv",
        "--endpoint",
        sandbox.url,
        "--api-key",
        KEY,
        "--run-dir",
        str(tmp_path / "run"),
        stdin=b"external_id,a\nx1,1\nx2,2\n",
    )
    assert done.returncode == 0, done.stderr
    assert "delivered 2" in done.stdout


def test_init_mapping_prints_a_mapping_the_importer_accepts(tmp_path: Path) -> None:
    csv, _ = _write(tmp_path)
    done = _cli("init-mapping", str(csv))
    assert done.returncode == 0, done.stderr
    mapping = tmp_path / "generated.toml"
    mapping.write_text(done.stdout)
    dry = _cli(
        "run", str(csv), "--mapping", str(mapping), "--dry-run", "--run-dir", str(tmp_path / "r")
    )
    assert dry.returncode in (0, 1), dry.stderr
    assert "rows read: 3" in dry.stdout


def test_python_dash_m_and_the_sandbox_command_work(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(r"listening on http://127\.0\.0\.1:\d+", line), line
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def _options(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(o for o in param.opts if o.startswith("--") and o != "--help")
    return names


def test_every_cli_option_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert isinstance(main, click.Group)
    missing = {
        f"{name} {option}"
        for name, command in main.commands.items()
        for option in _options(command)
        if option not in readme
    }
    assert not missing, f"undocumented options: {sorted(missing)}"
    for name in main.commands:
        assert f"braze-import {name}" in readme


def test_readme_opens_with_the_two_commands() -> None:
    first_lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:4]
    assert first_lines[1].startswith("make demo") and first_lines[2].startswith("make test")
