"""How a sandbox behaves: limits it enforces, faults it injects, where it records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from importer.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; the URL says which
    api_key: str = "sandbox-key"
    forbidden_api_keys: frozenset[str] = frozenset()  # known keys without users.track -> 403
    # Object-limit regime: combined = 75 in total, legacy = 75 per array, mau50 = 50 in total.
    batch_mode: Literal["combined", "legacy", "mau50"] = "legacy"
    record_dir: Path | None = None  # every accepted object appended to <dir>/<array>.jsonl
    keep_in_memory: bool = True  # keep accepted objects for Sandbox.accepted() (tests)
    latency_ms: float = 0.0  # every answer is delayed this long
    limit_per_minute: int | None = None  # fixed windows aligned on the clock
    limit_per_3s: int | None = None  # burst window
    limit_per_hour: int | None = None  # resets on the clock hour
    reset_header: Literal["epoch", "delta"] = "delta"  # form of x-ratelimit-reset
    p_429: float = 0.0
    p_500: float = 0.0
    p_503: float = 0.0
    # Read the body, maybe apply it (p_drop_after_apply), then close without answering.
    p_drop: float = 0.0
    p_drop_after_apply: float = 0.5
    p_slow: float = 0.0  # this share of answers waits slow_ms more
    slow_ms: float = 0.0
    # Answered per object inside a 201 with Braze's "blacklisted" error.
    blocked_external_ids: frozenset[str] = frozenset()
    # A request carrying any object of these users is refused whole: 400, nothing processed.
    poisoned_external_ids: frozenset[str] = frozenset()
    seed: int | None = None
    # POST /users/export/ids (docs/braze.md, Exporting profiles): a profile per user is kept
    # from every accepted object when ``profiles`` is on (off by default: it costs the server
    # CPU and memory per object, which benchmarks must not pay); the export has its own rate
    # limit.
    profiles: bool = False
    export_limit_per_minute: int | None = None
    export_fields_required: bool = True  # a workspace onboarded on or after 2024-08-22
    p_lose_attribute: float = 0.0  # fault: this share of users exported without one attribute

    def __post_init__(self) -> None:
        chances = {
            "p_429": self.p_429,
            "p_500": self.p_500,
            "p_503": self.p_503,
            "p_drop": self.p_drop,
            "p_drop_after_apply": self.p_drop_after_apply,
            "p_slow": self.p_slow,
            "p_lose_attribute": self.p_lose_attribute,
        }
        for name, value in chances.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"sandbox {name} must be between 0 and 1, not {value}")
        if self.p_429 + self.p_500 + self.p_503 > 1.0:
            raise ConfigError("sandbox p_429 + p_500 + p_503 must not exceed 1")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ConfigError("sandbox latency_ms and slow_ms must not be negative")
        for name, limit in (
            ("limit_per_minute", self.limit_per_minute),
            ("limit_per_3s", self.limit_per_3s),
            ("limit_per_hour", self.limit_per_hour),
            ("export_limit_per_minute", self.export_limit_per_minute),
        ):
            if limit is not None and limit < 1:
                raise ConfigError(f"sandbox {name} must be at least 1")
