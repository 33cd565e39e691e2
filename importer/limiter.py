"""Request pacing: one request every ``60 / rate`` seconds, shared by all workers.

A paced scheduler instead of a token bucket: the next slot is the previous slot plus the
interval, so there is no burst at the start and no 3-second window can hold more than
``rate / 20`` requests. A 429 pauses every worker until the server's wait is over.
(aiolimiter's leaky bucket bursts ``max_rate`` at once and spins under uvloop; see
docs/perf notes.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Hands out send slots no closer than ``interval`` apart; ``rate_per_minute=0`` is off."""

    def __init__(
        self,
        rate_per_minute: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # 0.1% slower than asked: a window edge that falls exactly on a slot (float rounding,
        # the server's clock) must never see rate/20 + 1 requests.
        self._interval = 60.0 / rate_per_minute * 1.001 if rate_per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.waited_s = 0.0  # time spent waiting on a server-requested pause

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every worker for ``seconds`` from now (a 429's wait)."""
        now = self._clock()
        until = now + seconds
        if until > self._paused_until:
            self.waited_s += until - max(now, self._paused_until)
            self._paused_until = until
            self._next_slot = max(self._next_slot, until)

    async def acquire(self) -> None:
        """Wait for this caller's slot. A cancelled waiter just loses its slot."""
        while True:
            now = self._clock()
            slot = max(now, self._paused_until)
            if self._interval:
                slot = max(slot, self._next_slot)
                self._next_slot = slot + self._interval
            if slot <= now:
                return
            await self._sleep(slot - now)
            if self._clock() >= self._paused_until:
                return
