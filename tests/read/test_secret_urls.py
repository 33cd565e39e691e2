"""A source URL that carries credentials (``user:password@``, a presigned query): they are used
to read and never shown or stored; ``resume`` and ``verify`` take the URL again (``--source``).

Against the local TLS server with a test CA, which refuses a request without the password or
the signature, and the sandbox, over sockets."""

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
import pytest

from importer import ConfigError, resume_import, verify_run
from importer.config import ImportConfig, ReadOptions
from importer.errors import InputError
from importer.models import SourceRow, record_dict
from importer.read import describe, display_name, open_source, redact_urls, url_secrets
from importer.rundir import close_all, reopen_files
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from tests.read.servers import KEY, Served, https_server, run_args

PASSWORD = "PASSWORD-9f2c"
SIGNATURE = "SECRETSIG-5b7e1d"
KEY_ID = "AKIDSECRET77"
SECRETS = (PASSWORD, SIGNATURE, KEY_ID)
QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={KEY_ID}%2F20261202%2Fus-east-1%2Fs3%2Faws4_request"
    f"&X-Amz-Signature={SIGNATURE}"
)
HIDDEN_QUERY = "X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Signature=***"
ROWS = 3_000
VERIFY_QUICKLY = ("--sample", "50", "--settle", "0", "--rate", "6000", "--quiet")
BAD_EVERY = 100  # points "n/a" on these rows: they fail, with their source, in failures.jsonl


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:p@host/a.csv?sig=x&sv=2&tok#f",
            "https://***@host/a.csv?sig=***&sv=***&***#***",
        ),
        ("https://host:8443/a.csv.gz?empty=", "https://host:8443/a.csv.gz?empty="),
        ("https://host/a.csv", "https://host/a.csv"),
        ("http://127.0.0.1:9/a.csv?token=t", "http://127.0.0.1:9/a.csv?token=***"),
        ("s3://bucket/night/a?.csv", "s3://bucket/night/a?.csv"),  # a key's own ? (a glob)
        ("gs://bucket/a.csv#1", "gs://bucket/a.csv#1"),
        ("exports/a?.csv", "exports/a?.csv"),
        ("-", "-"),
    ],
)
def test_a_display_name_keeps_what_tells_the_source_apart_and_hides_the_rest(
    url: str, shown: str
) -> None:
    assert display_name(url) == shown
    assert display_name(shown) == shown  # shown twice, shown the same
    assert redact_urls(f"--source={url}") == f"--source={shown}"


def test_the_secrets_of_a_url_are_its_long_hidden_parts_raw_and_decoded() -> None:
    url = f"https://reader:{PASSWORD}@host/a.csv?{QUERY}&X-Amz-Expires=3600"
    found = url_secrets(url)
    assert {PASSWORD, SIGNATURE, f"reader:{PASSWORD}"} <= set(found)
    assert f"{KEY_ID}/20261202/us-east-1/s3/aws4_request" in found  # decoded as well
    assert "3600" not in found  # too short to scrub from messages: it would hide words
    assert url_secrets("https://host/a.csv") == url_secrets("s3://b/k?x") == []


def test_the_password_goes_to_its_own_host_only_and_redirects_there_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"id,points\nu1,1\nu2,2\n"
    elsewhere = Served({"/moved.csv": body})
    with https_server(elsewhere, tmp_path) as (other_base, _):
        own = Served({"/a.csv": body}, basic_auth=f"reader:{PASSWORD}")
        own.redirects |= {"/latest.csv": "/a.csv", "/away.csv": f"{other_base}/moved.csv"}
        with https_server(own, tmp_path) as (base, ca_file):
            monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # both test CAs
            with_password = base.replace("https://", f"https://reader:{PASSWORD}@")
            assert _ids(f"{with_password}/latest.csv") == ["u1", "u2"]
            assert _ids(f"{with_password}/away.csv") == ["u1", "u2"]
            with pytest.raises(InputError, match=r"HTTP 403") as refused:
                _ids(f"{base.replace('https://', 'https://reader:wrong@')}/a.csv")
    assert None not in own.authorizations[:-1]  # the redirect to /a.csv kept it
    assert elsewhere.authorizations and set(elsewhere.authorizations) == {None}
    assert "https://***@127.0.0.1" in str(refused.value) and "wrong" not in str(refused.value)


def test_a_bucket_url_with_credentials_in_it_is_refused_without_showing_them() -> None:
    from importer.read.cloud import CloudBackend

    with pytest.raises(InputError, match=r"s3://\*\*\*@bucket/a.csv: credentials do not go") as no:
        CloudBackend().head(f"s3://{KEY_ID}:{PASSWORD}@bucket/a.csv")
    assert _leaks(str(no.value)) == []


def test_a_run_json_of_an_earlier_version_naming_the_whole_url_still_resumes_by_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its results.jsonl names rows by the whole URL: a resume must name them the same."""
    body = b"external_id,points\nu1,1\n"
    served = Served({"/a.csv": body}, basic_auth=f"reader:{PASSWORD}")
    with https_server(served, tmp_path) as (base, ca_file):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        url = base.replace("https://", f"https://reader:{PASSWORD}@") + "/a.csv"
        entry = {"name": url, "url": url, "size": len(body), "format": "csv"}
        entry["fingerprint"] = describe(url).version
        config = ImportConfig(sources=(url,), endpoint="(dry run)", api_key="")
        sources, _ = reopen_files({"sources": [entry]}, config, None)
        rows = list(sources[0].rows())
        close_all(sources)
    assert [r.ref.source for r in rows] == [url]


def _ids(url: str) -> list[str]:
    with open_source(url, ReadOptions()) as source:
        assert source.name == display_name(url)
        return [
            record_dict(row.record)["id"] for row in source.rows() if isinstance(row, SourceRow)
        ]


def _csv() -> bytes:
    lines = ["id,points"]
    lines += [f"u{n},{'n/a' if n % BAD_EVERY == 7 else n}" for n in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "importer", *args]


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def _files_leaking(run_dir: Path) -> dict[str, list[str]]:
    found = {str(p): _leaks(p.read_bytes()) for p in run_dir.rglob("*") if p.is_file()}
    return {path: leaked for path, leaked in found.items() if leaked}


def test_a_credentialed_url_is_read_never_stored_and_resumed_only_when_given_again(
    tmp_path: Path,
) -> None:
    served = Served({"/exports/users.csv": _csv()}, basic_auth=f"reader:{PASSWORD}")
    served.signature = SIGNATURE
    run_dir = tmp_path / "run"
    outputs: list[str] = []
    with https_server(served, tmp_path) as (base, ca_file):
        url = (
            base.replace("https://", f"https://reader:{PASSWORD}@") + f"/exports/users.csv?{QUERY}"
        )
        shown = f"{base.replace('https://', 'https://***@')}/exports/users.csv?{HIDDEN_QUERY}"
        env = {**os.environ, "BRAZE_API_KEY": KEY, "SSL_CERT_FILE": str(ca_file)}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(_cli(*args), env=env, capture_output=True, text=True)
            outputs.extend((done.stdout, done.stderr))
            return done

        with sandbox_in_thread(SandboxSettings(latency_ms=5, profiles=True)) as sandbox:
            args = run_args(tmp_path, url, sandbox.url, "--rate", "3000", "--concurrency", "1")
            proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            while sandbox.stats.requests < 10 and proc.poll() is None:
                time.sleep(0.01)  # kill a process that is sending
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            outputs.extend((out.decode(), err.decode()))
            assert 0 < len(_delivered(sandbox)) < ROWS, err.decode()

            # run.json keeps the URL without its credentials: resume needs it again.
            missing = cli("resume", str(run_dir), "--quiet", "--rate", "0")
            assert missing.returncode == 2 and _one_error_line(missing.stderr)
            assert f"source {shown} was read through a URL holding credentials" in missing.stderr
            assert "--source URL" in missing.stderr
            _refused_without_or_with_another_url(run_dir, url)

            resumed = cli("resume", str(run_dir), "--source", url, "--quiet", "--rate", "0")
            assert resumed.returncode == 1, resumed.stderr  # 1: some rows failed, as they must
            delivered = _delivered(sandbox)
            checked = cli("verify", str(run_dir), "--source", url, *VERIFY_QUICKLY)
            assert checked.returncode == 0, checked.stdout + checked.stderr

    good = {f"u{n}" for n in range(ROWS) if n % BAD_EVERY != 7}
    assert set(delivered) == good
    assert sum(delivered.values()) - len(good) <= 75  # at most the request in flight at the kill
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["rows_read"] == ROWS and summary["delivered"] == len(good)
    assert summary["failed"] == ROWS - len(good)
    manifest: dict[str, Any] = orjson.loads((run_dir / "run.json").read_bytes())
    entry = manifest["sources"][0]
    assert entry["name"] == entry["url"] == shown and entry["url_redacted"] is True
    assert manifest["arguments"] == [shown] and shown in manifest["command"]
    failures = [
        orjson.loads(line) for line in (run_dir / "failures.jsonl").read_bytes().splitlines()
    ]
    assert {f["source"] for f in failures} == {shown}
    assert _files_leaking(run_dir) == {}
    assert [leaked for text in outputs if (leaked := _leaks(text))] == []


def _refused_without_or_with_another_url(run_dir: Path, url: str) -> None:
    """In this process (the CLI's one line is shown above): another object's URL, and verify
    without the URL, are refused before anything is read or sent."""
    other = url.replace("/exports/users.csv", "/exports/other.csv")
    with pytest.raises(ConfigError, match="is not a source of this run") as wrong:
        resume_import(run_dir, api_key=KEY, source_urls=[other])
    assert wrong.value.exit_code == 2 and _leaks(str(wrong.value)) == []
    with pytest.raises(ConfigError, match="give it again with --source URL") as unknown:
        verify_run(run_dir, api_key=KEY)
    assert _leaks(str(unknown.value)) == []


def _delivered(sandbox: Sandbox) -> Counter[str]:
    return Counter(a["external_id"] for a in sandbox.accepted("attributes"))


def _one_error_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "error: " in lines[0] and "Traceback" not in stderr
