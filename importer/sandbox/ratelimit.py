"""Braze-style rate limits: fixed windows on the wall clock, and the headers that report them.

Windows are aligned on multiples of their length since the epoch, so the hourly one resets on the
clock hour as Braze's does (docs/braze.md, Rate limits for /users/track). A request is admitted only
if every window has room; admitted requests count in every window. Refused requests count nowhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from importer.sandbox.settings import SandboxSettings

Headers = dict[str, str]
RETRY_AFTER = "X-Ratelimit-Retry-After"


@dataclass(slots=True)
class _Window:
    limit: int
    seconds: int
    start: float = -1.0
    count: int = 0

    def roll(self, now: float) -> None:
        start = now - now % self.seconds
        if start != self.start:
            self.start = start
            self.count = 0

    @property
    def end(self) -> float:
        return self.start + self.seconds


class RateLimiter:
    """Decides 429s and computes ``x-ratelimit-*`` headers. ``clock`` is wall-clock seconds."""

    def __init__(self, settings: SandboxSettings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._epoch_reset = settings.reset_header == "epoch"
        self._windows = [
            _Window(limit, seconds)
            for limit, seconds in (
                (settings.limit_per_3s, 3),
                (settings.limit_per_minute, 60),
                (settings.limit_per_hour, 3600),
            )
            if limit is not None
        ]

    def admit(self) -> tuple[bool, Headers]:
        """(True, headers for the answer) or (False, headers for the 429)."""
        if not self._windows:
            return True, {}
        now = self._clock()
        for window in self._windows:
            window.roll(now)
        full = [w for w in self._windows if w.count >= w.limit]
        if full:
            wait = max(w.end for w in full) - now
            # On a 429 Braze sends only this header, never the x-ratelimit-* ones
            # (docs/braze.md, Rate-limit headers).
            return False, {RETRY_AFTER: str(max(1, math.ceil(wait)))}
        for window in self._windows:
            window.count += 1
        # Report the tightest window: the one with the fewest requests left (ties: the longest).
        tightest = min(self._windows, key=lambda w: (w.limit - w.count, -w.seconds))
        reset = (
            math.ceil(tightest.end) if self._epoch_reset else max(1, math.ceil(tightest.end - now))
        )
        return True, {
            "x-ratelimit-limit": str(tightest.limit),
            "x-ratelimit-remaining": str(tightest.limit - tightest.count),
            "x-ratelimit-reset": str(reset),
        }
