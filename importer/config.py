"""Frozen settings of a run. Built by the CLI (or any caller) and handed to ``run_import``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from importer.errors import ConfigError

# The one place the version is written: pyproject.toml reads it from here, the package exports
# it as ``importer.__version__`` and the client sends it in its User-Agent. A literal, not
# importlib.metadata: importing that and scanning the installed distributions cost ~130 M
# instructions in a bare interpreter (a run's start: ~48 M, with tqdm's import, which loads it).
VERSION = "0.1.0"

BatchMode = Literal["combined", "legacy", "mau50"]
MAX_BODY_BYTES = 4 * 1024 * 1024
# Headroom under Braze's 4 MB (docs/braze.md, Limits) so a request never meets the limit by a
# rounding of "MB".
PACK_BODY_BYTES = 4_000_000

INSTANCES: dict[str, str] = {
    **{f"US-0{n}": f"https://rest.iad-0{n}.braze.com" for n in range(1, 9)},
    "US-10": "https://rest.us-10.braze.com",
    "EU-01": "https://rest.fra-01.braze.eu",
    "EU-02": "https://rest.fra-02.braze.eu",
    "AU-01": "https://rest.au-01.braze.com",
    "ID-01": "https://rest.id-01.braze.com",
    "JP-01": "https://rest.jp-01.braze.com",
    "KR-01": "https://rest.kr-01.braze.com",
}


# Requests in flight at most: 833 requests/s with answers taking 360 ms.
DEFAULT_CONCURRENCY = 300


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Objects per request: ``total`` across the three arrays, ``per_array`` in each."""

    total: int
    per_array: int
    max_body_bytes: int = PACK_BODY_BYTES

    @classmethod
    def for_mode(cls, mode: BatchMode) -> BatchLimits:
        if mode == "legacy":
            return cls(total=225, per_array=75)
        if mode == "mau50":
            return cls(total=50, per_array=50)
        return cls(total=75, per_array=75)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped, jittered exponential backoff for 5xx, timeouts and dropped connections."""

    attempts: int = 6  # total tries of one request, the first included
    base_s: float = 0.5
    cap_s: float = 30.0
    request_timeout_s: float = 60.0
    max_rate_limit_waits: int = 50  # 429s tolerated for one request before it fails
    # After a timeout or dropped connection the body may have been applied: "retry" resends
    # (at-least-once, marked ambiguous in results.jsonl); "fail" records the rows as ambiguous.
    on_ambiguous: Literal["retry", "fail"] = "retry"


DEFAULT_ENCODING = "utf-8"
DEFAULT_MAX_CELL_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How to read sources. None means "not given": a CLI flag beats the mapping's ``[input]``
    table, which beats the defaults (``merged_over``)."""

    format: Literal["csv", "jsonl"] | None = None  # None: from the file extension
    encoding: str | None = None  # None: utf-8
    delimiter: str | None = None  # None: sniffed among , ; TAB |
    max_cell_bytes: int | None = None  # None: 1 MiB

    def merged_over(self, fallback: ReadOptions) -> ReadOptions:
        """These options where given, else ``fallback``'s."""
        return ReadOptions(
            format=self.format or fallback.format,
            encoding=self.encoding or fallback.encoding,
            delimiter=self.delimiter or fallback.delimiter,
            max_cell_bytes=self.max_cell_bytes or fallback.max_cell_bytes,
        )


@dataclass(frozen=True, slots=True)
class ImportConfig:
    sources: tuple[str, ...]
    endpoint: str  # normalised base URL, no trailing slash
    api_key: str = field(repr=False)
    mapping_path: Path | None = None
    read: ReadOptions = ReadOptions()
    run_dir: Path | None = None  # None: braze-runs/<UTC timestamp>
    rate_per_minute: int = 50_000  # 0 switches the limiter off
    concurrency: int = DEFAULT_CONCURRENCY  # a cap: workers are added as answers lag
    batch_mode: BatchMode = "combined"
    dry_run: bool = False
    retry: RetryPolicy = RetryPolicy()
    command: tuple[str, ...] = ()  # argv as typed, for run.json (the key is never in it)
    state_path: Path | None = None  # --state: send only what changed since the last delivery
    max_failed_ratio: float | None = None  # abort when more than this share of records failed
    # Processes converting rows (importer.runner.pool): None, one per core this process may
    # use; 1, everything in the main process.
    workers: int | None = None

    @property
    def limits(self) -> BatchLimits:
        return BatchLimits.for_mode(self.batch_mode)


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_endpoint(value: str | None) -> str:
    """Turn ``--endpoint`` (a base URL or an instance name such as ``EU-02``) into a base URL.

    Plain http is refused unless the host is loopback: the key would travel in clear. No DNS
    lookup happens here.
    """
    if not value:
        raise ConfigError("no endpoint: pass --endpoint or set BRAZE_REST_ENDPOINT")
    name = value.strip()
    if name.upper() in INSTANCES:
        return INSTANCES[name.upper()]
    parts = urlsplit(name)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        known = ", ".join(INSTANCES)
        raise ConfigError(f"endpoint {name!r} is neither a URL nor an instance name ({known})")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: the API key would travel in clear; "
            "use https (http is allowed for loopback only)"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/users/track"):
        path = path[: -len("/users/track")]
    return f"{parts.scheme}://{parts.netloc}{path}"
