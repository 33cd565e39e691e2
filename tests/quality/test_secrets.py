"""Secrets and personal data: the API key never leaks, run files are private, no plain http.

Every run here is the real CLI in a subprocess. Network activity is observed from inside that
process with an audit hook (``sys.addaudithook`` in a ``sitecustomize`` put on PYTHONPATH), which
sees every DNS lookup and every connect the interpreter makes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from importer.errors import AbortError
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from importer.send.client import BrazeClient

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "fixtures/hostile/ragged.csv"  # rows delivered and rows failed: every log has content
WRONG_KEY = "sk-live-7Qf3-do-not-leak-9c1e"
GOOD_KEY = "sandbox-key"
NETWORK_EVENTS = (
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.connect",
)
AUDIT_HOOK = f"""
import os, sys
_log = os.environ.get("NET_AUDIT_LOG")
_events = {NETWORK_EVENTS!r}

def _hook(event, args):
    if _log and event in _events:
        target = args[0] if event != "socket.connect" else args[1]
        with open(_log, "a", encoding="utf-8") as out:
            out.write(f"{{event}} {{target!r}}\\n")

sys.addaudithook(_hook)
"""


@pytest.fixture
def audited_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose Python processes log their network activity to the returned path."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook_dir), env.get("PYTHONPATH")]))
    env["NET_AUDIT_LOG"] = str(log)
    yield env, log


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with sandbox_in_thread(SandboxSettings(api_key=GOOD_KEY)) as running:
        yield running


def _cli(
    *args: str, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
    return subprocess.run(
        [sys.executable, "-m", "importer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def _files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def _assert_private(run_dir: Path) -> None:
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    files = _files(run_dir)
    assert {path.name for path in files} >= {"run.json", "summary.json", "failures.jsonl"}
    for path in run_dir.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


@pytest.mark.parametrize("how", ["flag", "flag=", "env"])
def test_a_401_echoing_the_key_leaves_no_trace_of_it(
    how: str, sandbox: Sandbox, tmp_path: Path, audited_env: tuple[dict[str, str], Path]
) -> None:
    env, _ = audited_env
    run_dir = tmp_path / "run"
    key_args: list[str] = []
    if how == "flag":
        key_args = ["--api-key", WRONG_KEY]
    elif how == "flag=":
        key_args = [f"--api-key={WRONG_KEY}"]
    else:
        env = env | {"BRAZE_API_KEY": WRONG_KEY}
    done = _cli(
        "run", SOURCE, "--endpoint", sandbox.url, *key_args, "--verbose", "--run-dir",
        str(run_dir), "--rate", "0", env=env, umask=0,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 3, done.stderr
    assert sandbox.stats.statuses.get(401, 0) >= 1  # the sandbox did echo the key back
    assert "401" in done.stderr  # the refusal is reported ...
    assert WRONG_KEY not in done.stdout
    assert WRONG_KEY not in done.stderr  # ... without the key
    files = _files(run_dir)
    assert files, "the run directory should hold the logs up to the abort"
    for path in files:
        assert WRONG_KEY.encode() not in path.read_bytes(), path
    _assert_private(run_dir)


def test_run_directory_is_private_whatever_the_umask(
    sandbox: Sandbox, tmp_path: Path, audited_env: tuple[dict[str, str], Path]
) -> None:
    env, _ = audited_env
    run_dir = tmp_path / "deep" / "run"
    done = _cli(
        "run", SOURCE, "--endpoint", sandbox.url, "--run-dir", str(run_dir), "--rate", "0",
        env=env | {"BRAZE_API_KEY": GOOD_KEY}, umask=0,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # two ragged rows failed, three delivered
    assert (run_dir / "results.jsonl").stat().st_size > 0
    assert (run_dir / "failures.jsonl").stat().st_size > 0
    _assert_private(run_dir)


def test_the_audit_hook_sees_loopback_traffic(
    sandbox: Sandbox, tmp_path: Path, audited_env: tuple[dict[str, str], Path]
) -> None:
    """The control for the next test: with a loopback endpoint, connects are seen."""
    env, log = audited_env
    done = _cli(
        "run", SOURCE, "--endpoint", sandbox.url, "--run-dir", str(tmp_path / "run"),
        env=env | {"BRAZE_API_KEY": GOOD_KEY},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "socket.connect" in log.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "endpoint",
    ["http://braze.invalid", "http://localhost.invalid:8080/users/track", "HTTP://rest.invalid"],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_network_activity(
    endpoint: str, tmp_path: Path, audited_env: tuple[dict[str, str], Path]
) -> None:
    env, log = audited_env
    run_dir = tmp_path / "run"
    done = _cli(
        "run", SOURCE, "--endpoint", endpoint, "--api-key", WRONG_KEY, "--run-dir", str(run_dir),
        env=env,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing plain http to" in lines[0], done.stderr
    assert WRONG_KEY not in done.stdout + done.stderr
    assert not log.exists(), log.read_text(encoding="utf-8")  # no lookup, no connect
    assert not run_dir.exists()  # refused before anything was started


def test_a_key_with_control_characters_is_refused_without_echoing_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A key pasted with a newline must be a usage error (exit 2), not an internal one."""
    pasted = WRONG_KEY + "\nrest"
    done = _cli(
        "run", SOURCE, "--endpoint", sandbox.url, "--api-key", pasted, "--verbose",
        "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert WRONG_KEY not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2


def _self_signed(directory: Path) -> ssl.SSLContext:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
         "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    """An https endpoint with an untrusted certificate gets no request (and never the key)."""
    context = _self_signed(tmp_path)
    seen: list[str] = []

    async def track(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"message": "success"}, status=201)

    async def attempt() -> BaseException | None:
        app = web.Application()
        app.router.add_post("/users/track", track)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        try:
            client = BrazeClient(
                f"https://127.0.0.1:{port}", WRONG_KEY, concurrency=1, timeout_s=10
            )
            async with client:
                await client.post(b"{}")
        except AbortError as exc:  # permanent: no retry can make the certificate trusted
            return exc
        finally:
            await runner.cleanup()
        return None

    error = asyncio.run(attempt())
    assert error is not None, "the self-signed certificate was accepted"
    assert "certificate" in str(error).lower()
    assert WRONG_KEY not in str(error)
    assert seen == []
