"""https:// sources against a local TLS server with a test CA, and local directories and globs."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer.config import ReadOptions
from importer.errors import InputError
from importer.models import SourceRow, record_dict
from importer.read import expand, open_source
from importer.read import remote as remote_module
from importer.sandbox import Sandbox
from tests.read.servers import KEY, Served, https_server, run_args


def _csv(first: int, rows: int) -> bytes:
    lines = ["id,points"] + [f"u{n},{n}" for n in range(first, first + rows)]
    return ("\n".join(lines) + "\n").encode()


def _ids(name: str) -> list[tuple[str, int, str]]:
    out = []
    for location in expand([name]):
        with open_source(location, ReadOptions()) as source:
            for row in source.rows():
                assert isinstance(row, SourceRow), row
                out.append((row.ref.source, row.ref.line, record_dict(row.record)["id"]))
    return out


def _run(tmp_path: Path, source: str, url: str, env: dict[str, str]) -> Any:
    env = {**os.environ, "BRAZE_API_KEY": KEY, **env}
    return subprocess.run(run_args(tmp_path, source, url), env=env, capture_output=True, text=True)


def test_an_https_source_is_imported_through_a_redirect_and_fingerprinted(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    served = Served({"/exports/users.csv.gz": gzip.compress(_csv(0, 3_000))})
    served.redirects["/latest/users.csv.gz"] = "/exports/users.csv.gz"
    with https_server(served, tmp_path) as (base, ca_file):
        done = _run(
            tmp_path, f"{base}/latest/users.csv.gz", sandbox.url, {"SSL_CERT_FILE": str(ca_file)}
        )
        assert done.returncode == 0, done.stderr
        delivered = Counter(a["external_id"] for a in sandbox.accepted("attributes"))
        assert delivered == Counter(f"u{n}" for n in range(3_000))
        manifest = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
        entry = manifest["sources"][0]
        assert entry["fingerprint"].startswith("etag:") and entry["size"] > 0
        # The object replaced: a resume is refused.
        served.files["/exports/users.csv.gz"] = gzip.compress(_csv(0, 2_999))
        resumed = subprocess.run(
            [sys.executable, "-m", "importer", "resume", str(tmp_path / "run")],
            env={**os.environ, "BRAZE_API_KEY": KEY, "SSL_CERT_FILE": str(ca_file)},
            capture_output=True,
            text=True,
        )
    assert resumed.returncode == 2 and "changed since the run started" in resumed.stderr


def test_an_https_connection_cut_mid_body_is_resumed_from_the_byte_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _csv(0, 40_000)
    served = Served({"/users.csv": body}, cut_once_after=300_000)
    monkeypatch.setattr(remote_module, "RETRY_WAITS", (0.0,))
    with https_server(served, tmp_path) as (base, ca_file):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        ids = _ids(f"{base}/users.csv")
    assert [i[2] for i in ids] == [f"u{n}" for n in range(40_000)]
    assert [i[1] for i in ids] == list(range(2, 40_002))
    assert served.ranges_asked and served.ranges_asked[0] != "bytes=0-"
    assert int(served.ranges_asked[0].removeprefix("bytes=").rstrip("-")) <= 300_000


def test_https_refusals_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = Served({"/a.csv": _csv(0, 5)})
    served.redirects["/to-http"] = "http://example.com/a.csv"
    with https_server(served, tmp_path) as (base, ca_file):
        with pytest.raises(InputError, match=r"certificate|SSL"):
            _ids(f"{base}/a.csv")  # the test CA is not trusted yet
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        with pytest.raises(InputError, match="HTTP 404"):
            _ids(f"{base}/missing.csv")
        with pytest.raises(InputError, match=r"refusing plain http to example\.com"):
            _ids(f"{base}/to-http")
    with pytest.raises(InputError, match="refusing plain http"):
        _ids("http://example.com/a.csv")


def test_a_directory_and_a_glob_read_their_files_sorted_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    (folder / "b.csv").write_bytes(_csv(3, 2))
    (folder / "a.csv.gz").write_bytes(gzip.compress(_csv(0, 3)))
    (folder / "c.jsonl").write_bytes(b'{"id": "u5", "points": 5}\n')
    (folder / "notes.txt").write_text("not an export")
    assert [i[2] for i in _ids(str(folder))] == [f"u{n}" for n in range(6)]
    assert [i[2] for i in _ids(str(folder / "*.csv*"))] == [f"u{n}" for n in range(5)]
    with pytest.raises(InputError, match=r"night/\*.tsv matches nothing"):
        _ids(str(folder / "*.tsv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no file to read"):
        _ids(str(tmp_path / "empty"))


def test_a_local_glob_is_expanded_in_run_json(tmp_path: Path, sandbox: Sandbox) -> None:
    for n in range(3):
        (tmp_path / f"users-{n}.csv").write_bytes(_csv(n * 10, 10))
    done = _run(tmp_path, str(tmp_path / "users-*.csv"), sandbox.url, {})
    assert done.returncode == 0, done.stderr
    manifest = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    assert [Path(s["name"]).name for s in manifest["sources"]] == [
        f"users-{n}.csv" for n in range(3)
    ]
    assert manifest["arguments"] == [str(tmp_path / "users-*.csv")]
    assert len(sandbox.accepted("attributes")) == 30
