"""Source URLs whose credentials make them hard to name or to parse: two objects that would show
the same name, passwords holding ``/ # ?``, malformed URLs, redirects to other schemes.

Against the local TLS server with a test CA and the sandbox, over sockets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from importer.sandbox import SandboxSettings, sandbox_in_thread
from tests.read.servers import KEY, Served, https_server, run_args

JAN = b"id,points\n" + b"".join(b"u%d,1\n" % n for n in range(5))
FEB = b"id,points\n" + b"".join(b"u%d,5\n" % n for n in range(5))
API_KEY = "APIKEY-SECRET-4d1f"


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
        args = run_args(tmp_path, url, "(dry run)", url, "--format", "csv", "--dry-run")
        args.remove("--endpoint")
        args.remove("(dry run)")
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
