"""Fixtures for the remote-source tests: one moto server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from importer.read.cloud import CloudBackend
from tests.read.servers import Moto, moto_server


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with moto_server() as running:
        yield running


@pytest.fixture
def s3_env(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """This process reads from moto (stores are rebuilt: the endpoint may differ per test)."""
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(CloudBackend, "_shared", None)
    return moto
