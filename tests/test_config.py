"""Endpoint resolution and argv redaction: the key never travels in clear or lands in a file."""

from __future__ import annotations

import pytest

from importer.config import BatchLimits, resolve_endpoint
from importer.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("US-01", "https://rest.iad-01.braze.com"),
        ("eu-02", "https://rest.fra-02.braze.eu"),
        ("https://rest.iad-03.braze.com/", "https://rest.iad-03.braze.com"),
        ("https://rest.iad-03.braze.com/users/track", "https://rest.iad-03.braze.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_endpoints_resolve(given: str, expected: str) -> None:
    assert resolve_endpoint(given) == expected


@pytest.mark.parametrize(
    "given", ["http://rest.iad-01.braze.com", "http://10.0.0.5", "ftp://x", "US-09", "", None]
)
def test_bad_endpoints_are_refused_before_any_network(given: str | None) -> None:
    with pytest.raises(ConfigError):
        resolve_endpoint(given)


def test_plain_http_refusal_names_the_reason() -> None:
    with pytest.raises(ConfigError, match="in clear"):
        resolve_endpoint("http://example.com")


def test_batch_modes() -> None:
    assert BatchLimits.for_mode("combined").total == 75
    assert (BatchLimits.for_mode("legacy").total, BatchLimits.for_mode("legacy").per_array) == (
        225,
        75,
    )
    assert BatchLimits.for_mode("mau50").total == 50
