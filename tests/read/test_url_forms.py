"""Source URLs whose credentials make them hard to name or to parse: two objects that would show
the same name, passwords holding ``/ # ?``, malformed URLs, redirects to other schemes.

Against the local TLS server with a test CA and the sandbox, over sockets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from importer.errors import InputError
from importer.read import describe, display_name, url_secrets
from importer.sandbox import SandboxSettings, sandbox_in_thread
from tests.read.servers import KEY, Served, https_server, run_args

JAN = b"id,points\n" + b"".join(b"u%d,1\n" % n for n in range(5))
FEB = b"id,points\n" + b"".join(b"u%d,5\n" % n for n in range(5))
API_KEY = "APIKEY-SECRET-4d1f"


def _dry_run_args(tmp_path: Path, source: str, *more: str) -> list[str]:
    args = run_args(tmp_path, source, "(dry run)", *more, "--dry-run")
    at = args.index("--endpoint")
    return args[:at] + args[at + 2 :]


def test_two_sources_that_would_show_the_same_name_are_refused_before_sending(
    tmp_path: Path,
) -> None:
    """Results, failures, verify and --state key rows by source name: two objects shown alike
    would be mixed up, so the run is refused and the user told to import them apart."""
    jan, feb = f"/dl?file=jan.csv&key={API_KEY}", f"/dl?file=feb.csv&key={API_KEY}"
    served = Served({jan: JAN, feb: FEB}, by_query=True)
    with https_server(served, tmp_path) as (base, ca_file):
        env = {**os.environ, "BRAZE_API_KEY": KEY, "SSL_CERT_FILE": str(ca_file)}
        with sandbox_in_thread(SandboxSettings()) as sandbox:
            args = run_args(tmp_path, base + jan, sandbox.url, base + feb, "--format", "csv")
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
            requests = sandbox.stats.requests
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{base}/dl?file=***&key=*** names two sources" in lines[0]
    assert "import them in separate runs" in lines[0] and API_KEY not in done.stderr
    assert requests == 0 and not (tmp_path / "run" / "run.json").exists()


def test_the_same_url_given_twice_is_not_two_sources_shown_alike(tmp_path: Path) -> None:
    served = Served({f"/dl?file=jan.csv&key={API_KEY}": JAN}, by_query=True)
    with https_server(served, tmp_path) as (base, ca_file):
        env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
        url = f"{base}/dl?file=jan.csv&key={API_KEY}"
        args = _dry_run_args(tmp_path, url, url, "--format", "csv")
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


PASSWORD_TAIL = "ss1234567"


@pytest.mark.parametrize("mark", ["/", "#", "?"])
def test_a_password_with_an_unencoded_slash_hash_or_question_mark_is_hidden(mark: str) -> None:
    url = f"https://user:pa{mark}{PASSWORD_TAIL}@host/a.csv?sig=SIGVALUE123"
    assert display_name(url) == "https://***@host/a.csv?sig=***"
    assert f"pa{mark}{PASSWORD_TAIL}" in url_secrets(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://host:8443/@me/a.csv",  # an @ in the path of a URL with a port
        "https://host/users/@me/a.csv",
        "https://[::1]:8443/a@b.csv",
    ],
)
def test_an_at_sign_in_the_path_of_a_url_without_userinfo_is_left_alone(url: str) -> None:
    assert display_name(url) == url and url_secrets(url) == []
    with_password = url.replace("https://", "https://u:LONGPASSWORD1@")
    assert display_name(with_password) == url.replace("https://", "https://***@")


@pytest.mark.parametrize("mark", ["/", "#", "?"])
def test_the_error_for_such_a_url_shows_no_part_of_the_password(tmp_path: Path, mark: str) -> None:
    served = Served({"/a.csv": JAN})
    with https_server(served, tmp_path) as (base, ca_file):
        env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
        host = base.removeprefix("https://")
        url = f"https://user:pa{mark}{PASSWORD_TAIL}@{host}/a.csv"
        args = _dry_run_args(tmp_path, url)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert f"https://***@{host}/a.csv" in lines[0] and "percent-encode" in lines[0], lines[0]
    assert PASSWORD_TAIL not in done.stdout + done.stderr and "pa" + mark not in done.stderr


def test_a_malformed_url_is_one_line_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        _dry_run_args(tmp_path, "https://[::1/a.csv?sig=SIGVALUE123"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, lines
    assert "https://[::1/a.csv?sig=*** is not a valid URL" in lines[0]
    assert "SIGVALUE123" not in done.stdout + done.stderr


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:1/next.csv", "http://example.com/next.csv"])
def test_a_redirect_to_anything_but_https_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    served = Served({"/a.csv": JAN}, redirects={"/moved.csv": target})
    with https_server(served, tmp_path) as (base, ca_file):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        with pytest.raises(InputError, match=r"refusing|http is allowed for loopback") as refused:
            describe(f"{base}/moved.csv")
    assert refused.value.exit_code == 2
