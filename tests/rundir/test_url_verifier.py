"""``resume``/``verify --source URL`` accepts the URL the run read, not another one that shows the
same once its credentials are hidden: run.json keeps a salted slow hash of it (never the URL).

Against the local TLS server with a test CA, over sockets; the runs are dry runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from importer import ConfigError, run_import
from importer.config import ImportConfig, ReadOptions
from importer.models import SourceRow, record_dict
from importer.rundir import close_all, reopen_files
from tests.read.servers import Served, https_server

KEY = "APIKEY-SECRET-77c1"
JAN = b"external_id,points\nu0,1\nu1,1\n"
FEB = b"external_id,points\nu7,9\nu8,9\n"  # the same size: nothing else tells them apart
SIGNED = "X-Amz-Date=20261202T000000Z&X-Amz-Signature="


def _dry_run(url: str, run_dir: Path) -> dict[str, Any]:
    config = ImportConfig(
        sources=(url,),
        endpoint="(dry run)",
        api_key="",
        read=ReadOptions(format="csv"),
        run_dir=run_dir,
        dry_run=True,
    )
    assert run_import(config).exit_code == 0
    manifest: dict[str, Any] = orjson.loads((run_dir / "run.json").read_bytes())
    return manifest


def _ids(manifest: dict[str, Any], url: str) -> list[str]:
    config = ImportConfig(
        sources=(), endpoint="(dry run)", api_key="", read=ReadOptions(format="csv"), dry_run=True
    )
    sources, _ = reopen_files(manifest, config, None, [url])
    try:
        rows = [row for row in sources[0].rows() if isinstance(row, SourceRow)]
    finally:
        close_all(sources)
    return [str(record_dict(row.record)["external_id"]) for row in rows]


@contextmanager
def _run_of_jan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versioned: bool
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """A dry run of jan's URL; yields jan's and feb's URLs (shown alike) and its run.json."""
    jan, feb = f"/dl?id=123&key={KEY}", f"/dl?id=456&key={KEY}"
    served = Served({jan: JAN, feb: FEB}, by_query=True, etags=versioned, dates=versioned)
    with https_server(served, tmp_path) as (base, ca_file):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        yield base + jan, base + feb, _dry_run(base + jan, tmp_path / "run")


@pytest.mark.parametrize("versioned", [False, True], ids=["no-size-no-version", "etag"])
def test_another_objects_url_shown_alike_is_refused_and_the_runs_own_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versioned: bool
) -> None:
    with _run_of_jan(tmp_path, monkeypatch, versioned) as (jan, feb, manifest):
        with pytest.raises(ConfigError, match="is not a source of this run") as wrong:
            _ids(manifest, feb)
        assert wrong.value.exit_code == 2 and KEY not in str(wrong.value)
        assert _ids(manifest, jan) == ["u0", "u1"]
    verifier = manifest["sources"][0]["url_verifier"]
    assert verifier["kdf"] == "pbkdf2-sha256" and len(bytes.fromhex(verifier["salt"])) == 16
    assert KEY.encode() not in (tmp_path / "run" / "run.json").read_bytes()


def test_a_run_json_without_a_verifier_keeps_matching_by_the_name_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written before verifiers: the given URL is taken when it shows as recorded."""
    with _run_of_jan(tmp_path, monkeypatch, versioned=False) as (_, feb, manifest):
        del manifest["sources"][0]["url_verifier"]
        assert _ids(manifest, feb) == ["u7", "u8"]


def test_the_same_object_presigned_again_is_accepted_another_key_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired presigned URL is presigned again for the resume: new date and signature."""
    served = Served({"/exports/jan.csv": JAN, "/exports/feb.csv": FEB}, signature="SIG-OLD-1234")
    with https_server(served, tmp_path) as (base, ca_file):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        manifest = _dry_run(f"{base}/exports/jan.csv?{SIGNED}SIG-OLD-1234", tmp_path / "run")
        served.signature = "SIG-NEW-5678"
        again = f"{base}/exports/jan.csv?{SIGNED.replace('02T', '03T')}SIG-NEW-5678"
        assert _ids(manifest, again) == ["u0", "u1"]
        with pytest.raises(ConfigError, match="is not a source of this run"):
            _ids(manifest, f"{base}/exports/feb.csv?{SIGNED}SIG-NEW-5678")
