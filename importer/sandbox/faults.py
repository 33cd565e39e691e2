"""Injected faults, drawn per request from one seeded random generator."""

from __future__ import annotations

import random
from dataclasses import dataclass

from importer.sandbox.settings import SandboxSettings


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong with one request."""

    status: int | None = None  # 429, 500 or 503 answered instead of processing
    drop: bool = False  # close the connection instead of answering
    apply_before_drop: bool = False  # the dropped request was applied first (ambiguous outcome)
    slow: bool = False  # answer slow_ms later than usual


NO_FAULT = FaultPlan()


class Faults:
    def __init__(self, settings: SandboxSettings) -> None:
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._active = (
            settings.p_429 + settings.p_500 + settings.p_503 + settings.p_drop + settings.p_slow > 0
        )

    def draw(self) -> FaultPlan:
        if not self._active:
            return NO_FAULT
        s, rng = self._settings, self._rng
        # Always four draws, so one seed gives the same sequence whatever the outcomes.
        pick, drop, applied, slow = rng.random(), rng.random(), rng.random(), rng.random()
        status: int | None = None
        if pick < s.p_429:
            status = 429
        elif pick < s.p_429 + s.p_500:
            status = 500
        elif pick < s.p_429 + s.p_500 + s.p_503:
            status = 503
        return FaultPlan(
            status=status,
            drop=status is None and drop < s.p_drop,
            apply_before_drop=applied < s.p_drop_after_apply,
            slow=slow < s.p_slow,
        )
