"""s3:// sources against moto's standalone server, over a socket: globs, resume, a replaced
object, a connection cut mid-object, wrong credentials, a missing bucket, no extra."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.config import ImportConfig, ReadOptions
from importer.errors import InputError, SourceLost
from importer.models import SourceRow, record_dict
from importer.read import expand, open_source
from importer.read import remote as remote_module
from importer.read.cloud import CloudBackend
from importer.runner import run_import
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from tests.read.servers import KEY, MAPPING, CuttingProxy, Moto, run_args


def _object(first: int, rows: int) -> bytes:
    """A gzip CSV of users ``first`` .. ``first + rows - 1`` that hardly compresses."""
    rng = random.Random(first)
    lines = ["id,points,pad"]
    lines += [f"u{n},{n},{rng.getrandbits(256):064x}" for n in range(first, first + rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)


def _bucket(moto: Moto, objects: dict[str, bytes]) -> str:
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    client = moto.client()
    client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def _night(moto: Moto, rows: int = 2_000) -> tuple[str, int]:
    """Three gzip objects under a dated prefix (and one that the glob must leave out)."""
    objects = {f"2026-12-01/users-{n}.csv.gz": _object(n * rows, rows) for n in range(3)}
    objects["2026-12-01/notes.txt"] = b"not an export"
    objects["2026-12-02/users-0.csv.gz"] = _object(10**6, 5)
    return _bucket(moto, objects), 3 * rows


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "importer", *args]


def _env(moto: Moto, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **moto.env(), "BRAZE_API_KEY": KEY, **extra}


def _delivered(sandbox: Sandbox) -> Counter[str]:
    return Counter(a["external_id"] for a in sandbox.accepted("attributes"))


def _manifest(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    return data


def test_a_glob_of_three_gzip_objects_is_delivered_exactly(
    tmp_path: Path, moto: Moto, sandbox: Sandbox
) -> None:
    bucket, rows = _night(moto)
    glob = f"s3://{bucket}/2026-12-01/*.csv.gz"
    done = subprocess.run(
        run_args(tmp_path, glob, sandbox.url, "--state", str(tmp_path / "state.sqlite")),
        env=_env(moto),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _delivered(sandbox) == Counter(f"u{n}" for n in range(rows))
    manifest = _manifest(tmp_path)
    assert manifest["arguments"] == [glob]
    names = [s["name"] for s in manifest["sources"]]
    assert names == [f"s3://{bucket}/2026-12-01/users-{n}.csv.gz" for n in range(3)]
    assert all(s["fingerprint"].startswith("etag:") and s["size"] > 0 for s in manifest["sources"])
    assert moto.secret not in (tmp_path / "run" / "run.json").read_text()


def test_resume_after_sigkill_delivers_the_rest_and_a_replaced_object_is_refused(
    tmp_path: Path, moto: Moto
) -> None:
    bucket, rows = _night(moto, rows=3_000)
    glob = f"s3://{bucket}/2026-12-01/"
    per_request = 75  # legacy mode: 75 attribute objects per request
    with sandbox_in_thread(SandboxSettings(latency_ms=5)) as sandbox:
        args = run_args(tmp_path, glob, sandbox.url, "--rate", "3000", "--concurrency", "1")
        proc = subprocess.Popen(args, env=_env(moto), stderr=subprocess.PIPE)
        while sandbox.stats.requests < 20 and proc.poll() is None:
            time.sleep(0.01)  # kill a process that is sending
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert 0 < len(_delivered(sandbox)) < rows
        resumed = subprocess.run(
            _cli("resume", str(tmp_path / "run"), "--quiet", "--rate", "0"),
            env=_env(moto),
            capture_output=True,
            text=True,
        )
        assert resumed.returncode == 0, resumed.stderr
        delivered = _delivered(sandbox)
    assert set(delivered) == {f"u{n}" for n in range(rows)}
    assert sum(delivered.values()) - rows <= per_request  # at most the request in flight
    summary = orjson.loads((tmp_path / "run" / "summary.json").read_bytes())
    assert summary["delivered"] == summary["rows_read"] == rows
    # The same object, replaced: a resume cannot know which of its rows were sent.
    moto.client().put_object(
        Bucket=bucket, Key="2026-12-01/users-1.csv.gz", Body=_object(3_000, 2_999)
    )
    again = subprocess.run(
        _cli("resume", str(tmp_path / "run")), env=_env(moto), capture_output=True, text=True
    )
    assert again.returncode == 2
    assert "users-1.csv.gz changed since the run started" in again.stderr
    assert "Traceback" not in again.stderr


def _read_all(name: str) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for location in expand([name]):
        with open_source(location, ReadOptions()) as source:
            for row in source.rows():
                assert isinstance(row, SourceRow), row
                out.append((row.ref.source, row.ref.line, record_dict(row.record)))
    return out


def test_a_connection_cut_mid_object_loses_no_row_and_reads_none_twice(
    s3_env: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, rows = _night(s3_env, rows=4_000)
    glob = f"s3://{bucket}/2026-12-01/*.csv.gz"
    expected = _read_all(glob)
    assert [r[2]["id"] for r in expected] == [f"u{n}" for n in range(rows)]
    proxy = CuttingProxy(int(s3_env.url.rsplit(":", 1)[1]), cut_after=100_000).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setattr(CloudBackend, "_shared", None)
    monkeypatch.setattr(remote_module, "RETRY_WAITS", (0.0,) * 5)
    try:
        assert _read_all(glob) == expected
        assert proxy.cut_done == 1
    finally:
        proxy.close()


def test_a_connection_that_keeps_dropping_stops_the_run_resumably(
    s3_env: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket, _ = _night(s3_env, rows=20_000)
    proxy = CuttingProxy(int(s3_env.url.rsplit(":", 1)[1]), cut_after=600_000, down_after_cut=True)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setattr(CloudBackend, "_shared", None)
    monkeypatch.setattr(remote_module, "RETRY_WAITS", (0.0,) * 3)
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    config = ImportConfig(
        mapping_path=tmp_path / "map.toml",
        sources=(f"s3://{bucket}/2026-12-01/users-0.csv.gz",),
        endpoint="http://127.0.0.1:9",
        api_key=KEY,
        run_dir=tmp_path / "run",
        dry_run=True,
        workers=1,
    )
    try:
        report = run_import(config)
    finally:
        proxy.close()
    assert report.exit_code == SourceLost.exit_code == 3
    assert report.error is not None and "after 3 retries" in report.error
    summary = orjson.loads((tmp_path / "run" / "summary.json").read_bytes())
    assert summary["status"] == "aborted"
    assert 0 < summary["rows_read"] < 20_000
    assert summary["rows_read"] == summary["delivered"] + summary["unsent"]


@pytest.mark.parametrize(
    "case", ["wrong credentials", "missing bucket", "missing object", "glob matching nothing"]
)
def test_store_errors_are_one_line_exit_2_without_the_credentials(
    tmp_path: Path, moto: Moto, case: str
) -> None:
    bucket, _ = _night(moto, rows=10)
    env = _env(moto)
    source = f"s3://{bucket}/2026-12-01/users-0.csv.gz"
    secret = "wrongSecretKey/abcdefghijklmnopqrstuvwxyz"
    if case == "wrong credentials":
        env |= {"AWS_ACCESS_KEY_ID": "AKIAWRONGKEY1234", "AWS_SECRET_ACCESS_KEY": secret}
    elif case == "missing bucket":
        source = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/2026-12-01/*.csv.gz"
    elif case == "missing object":
        source = f"s3://{bucket}/2026-12-01/users-7.csv.gz"
    else:
        source = f"s3://{bucket}/2026-12-09/*.csv.gz"
    done = subprocess.run(
        run_args(tmp_path, source, "http://127.0.0.1:9"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], done.stderr  # (after a timestamp)
    words = {
        "wrong credentials": "credentials",
        "missing bucket": "bucket does not exist",
        "missing object": "users-7.csv.gz: not found",
        "glob matching nothing": "matches nothing",
    }
    assert words[case] in lines[0]
    for secret_text in (moto.secret, moto.key_id, "AKIAWRONGKEY1234", secret):
        assert secret_text not in done.stderr


def test_without_the_cloud_extra_an_s3_source_names_it(tmp_path: Path) -> None:
    hide = (
        "import sys; sys.modules['obstore'] = None; sys.argv = ['braze-import'] + sys.argv[1:];"
        "from importer.__main__ import run; run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide, "init-mapping", "s3://exports/users.csv"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: s3:// and gs:// sources need the cloud extra: pip install 'braze-importer[cloud]'"
    )


def test_init_mapping_reads_the_first_object_of_a_glob(tmp_path: Path, moto: Moto) -> None:
    bucket, _ = _night(moto, rows=50)
    done = subprocess.run(
        _cli("init-mapping", f"s3://{bucket}/2026-12-01/*.csv.gz"),
        env=_env(moto),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "points" in done.stdout


def test_aws_profile_files_are_a_credential_source(
    s3_env: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket, _ = _night(s3_env, rows=10)
    profile = tmp_path / "credentials"
    profile.write_text(
        f"[nightly]\naws_access_key_id = {s3_env.key_id}\n"
        f"aws_secret_access_key = {s3_env.secret}\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(profile))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "nightly")
    assert len(_read_all(f"s3://{bucket}/2026-12-01/users-2.csv.gz")) == 10
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    monkeypatch.setattr(CloudBackend, "_shared", None)
    with pytest.raises(InputError, match="AWS profile"):
        _read_all(f"s3://{bucket}/2026-12-01/users-2.csv.gz")


def test_a_bucket_folder_names_its_exports(s3_env: Moto) -> None:
    bucket, _ = _night(s3_env, rows=5)
    names = [x.name for x in expand([f"s3://{bucket}/2026-12-01/"])]
    assert names == [f"s3://{bucket}/2026-12-01/users-{n}.csv.gz" for n in range(3)]
    with pytest.raises(InputError, match="matches nothing"):
        expand([f"s3://{bucket}"])  # its top level holds folders only
