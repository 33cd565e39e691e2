"""Request pacing shared by all workers: paced slots, steered by the server's answers.

A paced scheduler instead of a token bucket: the next slot is the previous slot plus the
interval, so there is no burst at the start, and as the interval never drops below the
ceiling's (``60 / rate``), no 3-second window holds more than ``rate / 20`` requests; a record
of the last ``rate / 20`` grants keeps that true when timers fire late. How long the interval
is — the ceiling, AIMD after 429s, the budget the server's ``x-ratelimit-*`` headers report —
is decided in importer/send/rate_control.py. A 429 (or a spent budget) pauses every worker until
the server's wait is over.
(aiolimiter's leaky bucket was measured as a backstop under this pacer: sized so that no
3-second window can exceed rate/20, it spins under uvloop's millisecond timers; see
docs/performance.md.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from importer.send.rate_control import RateControl, parse_budget

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

WINDOW_S = 3.0  # no window this long holds more than rate / 20 grants
LONG_WAIT_S = 60.0  # a server wait longer than this is shown to the user ("waiting until ...")


class Pacer:
    """Hands out send slots; ``rate_per_minute=0`` is off (no pacing, but 429 pauses hold).

    ``clock`` is monotonic seconds (the event loop's); ``wall_clock`` is epoch seconds, only
    used to say until when a long wait lasts.
    """

    def __init__(
        self,
        rate_per_minute: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._control = RateControl(rate_per_minute, clock()) if rate_per_minute > 0 else None
        self._next_slot = 0.0
        self._paused_until = 0.0
        # The times of the last rate/20 grants, oldest at _recent_at (empty: pacing is off).
        window_limit = max(1, rate_per_minute // 20) if rate_per_minute > 0 else 0
        self._recent = [-math.inf] * window_limit
        self._recent_at = 0
        self._long_wait_ends = 0.0  # monotonic end of the current long wait
        self._long_wait_until = 0.0  # the same, in epoch seconds
        self.grants = 0  # slots handed out
        self.answered = 0  # answers reported (on_response, on_rate_limited, on_no_answer)
        self.waited_s = 0.0  # time spent paused on the rate limit (429s, spent budgets)

    @property
    def enabled(self) -> bool:
        return self._control is not None

    @property
    def paused_until(self) -> float:
        return self._paused_until

    @property
    def current_rate_per_minute(self) -> float:
        """The pace now (whether or not paused); 0.0 when pacing is off."""
        if self._control is None:
            return 0.0
        return 60.0 * self._control.rate_per_s(self._clock())

    @property
    def others_rate_per_minute(self) -> float:
        """What other clients sharing our quota are measured to spend (0.0 when pacing is off)."""
        return 0.0 if self._control is None else max(0.0, 60.0 * self._control.others_per_s)

    @property
    def long_wait_until(self) -> float | None:
        """Epoch seconds a long server-requested wait ends, while one is under way."""
        if self._clock() < self._long_wait_ends:
            return self._long_wait_until
        return None

    def pause(self, seconds: float) -> None:
        """Hold every worker for ``seconds`` from now (a 429's wait)."""
        now = self._clock()
        until = now + seconds
        if until > self._paused_until:
            self.waited_s += until - max(now, self._paused_until)
            self._paused_until = until
            self._next_slot = max(self._next_slot, until)
        if seconds > LONG_WAIT_S and until >= self._long_wait_ends:
            self._long_wait_ends = until
            self._long_wait_until = self._wall_clock() + seconds

    def on_response(self, headers: Mapping[str, str], now_epoch: float) -> None:
        """Every answer but a 429: its ``x-ratelimit-*`` headers (lower-case names) steer the pace.
        ``now_epoch`` is the wall clock when it arrived (an epoch reset is relative to it)."""
        self.answered += 1
        if self._control is None:
            return
        budget = parse_budget(headers, now_epoch)
        in_flight = self.grants - self.answered
        hold = self._control.observe(budget, self._clock(), self.grants, in_flight)
        if hold > 0:
            self.pause(hold)

    def on_rate_limited(
        self, wait_s: float, headers: Mapping[str, str] | None = None, now_epoch: float = 0.0
    ) -> None:
        """A 429: every worker waits ``wait_s`` (the server's word). Then, if the budget was far
        from spent (a blip), the pace resumes as before; else at a reduced pace that grows back
        towards the ceiling. Braze sends no budget on a 429, but one is read if ``headers``
        carry it; otherwise the budgets of the answers before it decide."""
        self.answered += 1
        now = self._clock()
        self.pause(wait_s)
        if self._control is not None:
            budget = parse_budget(headers, now_epoch) if headers else None
            in_flight = self.grants - self.answered
            self._control.rate_limited(now, self._paused_until, budget, self.grants, in_flight)

    def on_no_answer(self) -> None:
        """A request that got no answer (timeout, connection lost): no longer in flight."""
        self.answered += 1

    async def acquire(self) -> None:
        """Wait for this caller's slot. A cancelled waiter just loses its slot."""
        while True:
            now = self._clock()
            slot = max(now, self._paused_until)
            if self._control is not None:
                slot = max(slot, self._next_slot)
                self._next_slot = self._control.next_after(slot)
            if slot > now:
                # One sleep per waiter: its slot is reserved, nobody polls.
                await self._sleep(slot - now)
                if self._clock() < self._paused_until:
                    continue  # a 429 came meanwhile: queue again behind its wait
            if self._recent:
                await self._window_room()
                if self._clock() < self._paused_until:
                    continue
                self._recent[self._recent_at] = self._clock()
                self._recent_at = (self._recent_at + 1) % len(self._recent)
            self.grants += 1
            return

    async def _window_room(self) -> None:
        """Wait, rarely, until the last 3 seconds hold fewer than rate/20 grants. Slots are
        spaced for that already; this catches timers that fire late (a busy loop, timers of
        millisecond resolution) and then release several waiters at once."""
        while (wait := self._recent[self._recent_at] + WINDOW_S - self._clock()) > 0:
            await self._sleep(wait)
