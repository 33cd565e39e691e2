"""The pace behind the Pacer: a ceiling, AIMD after 429s, and the server's reported budget.

Three limits apply at once and the slowest wins:

- the ceiling (``--rate``), never exceeded;
- AIMD: a 429 that means the quota is spent halves the pace, which then grows back by 1% of
  the ceiling per second of answered traffic, up to the ceiling. A 429 while the budget is far
  from spent is a blip (a server's hiccup, not our pace): it costs its wait and no cut, unless
  429s stop being rare, which means a limit the headers do not tell us about;
- the budget: each window the server reports (told apart by ``x-ratelimit-limit``) still allows
  ``remaining - reserve`` requests before its reset. They are spread evenly over the time left,
  less what other clients on the same quota are measured to spend, so the budget runs out at
  the reset and not before: the server should never need to answer 429.

Everything here is synchronous arithmetic on times the caller passes in (monotonic seconds),
so it is cheap at 833 requests/s and testable without an event loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# An x-ratelimit-reset above this is epoch seconds, else a delta seconds (docs/braze.md,
# Rate-limit headers).
EPOCH_THRESHOLD = 1_000_000_000
DECREASE = 0.5  # a 429 multiplies the pace by this
INCREASE_PER_S = 0.01  # then each second of answers adds this share of the ceiling
FLOOR_SHARE = 0.01  # AIMD never goes below this share of the ceiling
RESERVE_SHARE = 0.005  # left unspent in each window against estimation error, plus ...
IN_FLIGHT_SHARE = 0.05  # ... our requests in flight, counted up to this share of the limit
SLACK_SHARE = 0.01  # a rise of remaining beyond this share of the limit means a new window
SAMPLE_S = 0.5  # how often the other clients' rate is sampled within a window
OTHERS_WEIGHT = 0.3  # weight of a new sample in the other clients' moving average
STALE_GRACE_S = 1.0  # answers from a window that has ended are ignored this long after its end
MIN_SHARE_OF_EVEN = 0.1  # however much others spend, we may still send this share of an even pace
# A 429 is a blip while every known window has more than this share of its limit left (at least
# SPENT_MIN requests), after the reserve, our requests since its report and others' spending.
SPENT_SHARE = 0.02
SPENT_MIN = 10.0
RECENT_WEIGHT = 0.01  # weight of one answer in the moving share of 429s (about the last 100)
BLIP_MAX_SHARE = 0.1  # 429s this common are no blips, whatever the budget says


@dataclass(frozen=True, slots=True)
class Budget:
    """One answer's ``x-ratelimit-*`` headers: ``remaining`` requests for ``seconds_left``."""

    limit: int  # 0 when the server did not say
    remaining: float
    seconds_left: float


def parse_budget(headers: Mapping[str, str], now_epoch: float) -> Budget | None:
    """The budget an answer reports, or None when its headers are missing or unusable."""
    remaining_text = headers.get("x-ratelimit-remaining")
    reset_text = headers.get("x-ratelimit-reset")
    if remaining_text is None or reset_text is None:
        return None
    try:
        remaining = float(remaining_text)
        reset = float(reset_text)
        limit = int(float(headers.get("x-ratelimit-limit", "0")))
    except (ValueError, OverflowError):  # not a number; "inf" as the limit
        return None
    # Both forms are in use: epoch seconds of the reset, or seconds until it.
    seconds_left = reset - now_epoch if reset > EPOCH_THRESHOLD else reset
    # A reset already past (or our clock ahead of the server's) says nothing about the future.
    if not (seconds_left > 0 and remaining >= 0 and math.isfinite(seconds_left + remaining)):
        return None
    return Budget(max(limit, 0), remaining, seconds_left)


@dataclass(slots=True)
class _Window:
    """What we know of one server window; ``end`` is an upper bound of its reset (monotonic)."""

    end: float
    remaining: float  # the lowest reported: answers arrive slightly out of order
    pace: float = math.inf  # requests/s we may send until ``end``
    sampled_at: float = 0.0
    sampled_remaining: float = 0.0
    sampled_grants: int = 0
    seen_at: float = 0.0  # the latest report: when, what was left after its reserve, our grants
    seen_left: float = 0.0
    seen_grants: int = 0


def _reserve(limit: int, in_flight: int) -> float:
    """Left unspent in a window: a margin, plus our requests the server has not counted yet
    (capped: an answer never reported, a timeout, would otherwise count forever)."""
    return max(2.0, RESERVE_SHARE * limit) + min(max(in_flight, 0), IN_FLIGHT_SHARE * limit)


def _far_from_spent(limit: int, left: float) -> bool:
    return left > max(SPENT_MIN, SPENT_SHARE * limit)


class RateControl:
    """Decides the spacing between send slots. Times are monotonic seconds."""

    def __init__(self, rate_per_minute: int, now: float) -> None:
        # 0.1% slower than asked: a window edge that falls exactly on a slot (float rounding,
        # the server's clock) must never see rate/20 + 1 requests.
        self.ceiling_interval = 60.0 / rate_per_minute * 1.001
        self._ceiling = 1.0 / self.ceiling_interval
        self._aimd = self._ceiling
        self._base_interval = self.ceiling_interval
        self._grown_at = now
        self._no_cut_until = -math.inf
        self._windows: dict[int, _Window] = {}
        self._limit_interval = self.ceiling_interval
        self._limit_until = math.inf  # the binding window's end (inf: none binds)
        self._limit_applies = False
        self.others_per_s = 0.0  # other clients' measured spending on our quota (may be < 0)
        self._share_429 = 0.0  # moving share of 429s among recent answers
        self.blips = 0  # 429s that cost only their wait
        self.cuts = 0  # 429s that cut the pace

    def next_after(self, slot: float) -> float:
        """The earliest next slot after one granted at ``slot``."""
        if slot >= self._limit_until:
            self._bind(slot)
        step = slot + self._base_interval
        if self._limit_applies:
            # The window's pace holds until its reset; after that only the base pace does.
            return max(step, min(slot + self._limit_interval, self._limit_until))
        return step

    def rate_per_s(self, now: float) -> float:
        """The pace at ``now``: the slowest of the ceiling, AIMD and the binding window."""
        rate = 1.0 / self._base_interval
        for window in self._windows.values():
            if window.end > now:
                rate = min(rate, max(window.pace, 0.0))
        return rate

    def rate_limited(
        self, now: float, resume_at: float, budget: Budget | None, grants: int, in_flight: int
    ) -> None:
        """A 429 (``budget``: its own headers', if it had any). A blip keeps the pace; else cut
        it, once per episode (the answers in flight will be 429s too)."""
        self._share_429 += RECENT_WEIGHT * (1.0 - self._share_429)
        if self._is_blip(now, budget, grants, in_flight):
            self.blips += 1
            return
        if now < self._no_cut_until:
            return
        self.cuts += 1
        self._aimd = max(self._ceiling * FLOOR_SHARE, self.rate_per_s(now) * DECREASE)
        self._base_interval = 1.0 / min(self._aimd, self._ceiling)
        self._no_cut_until = resume_at + 1.0
        self._grown_at = max(now, resume_at)

    def _is_blip(self, now: float, budget: Budget | None, grants: int, in_flight: int) -> bool:
        """Rare, and the server's last word on every window is that much is left. With no
        word at all (no headers, or every known window over), it is no blip."""
        if self._share_429 >= BLIP_MAX_SHARE:
            return False
        if budget is not None:
            left = budget.remaining - _reserve(budget.limit, in_flight)
            return _far_from_spent(budget.limit, left)
        others = max(0.0, self.others_per_s)
        known = [(limit, w) for limit, w in self._windows.items() if w.end > now]
        return bool(known) and all(
            _far_from_spent(
                limit, w.seen_left - (grants - w.seen_grants) - others * (now - w.seen_at)
            )
            for limit, w in known
        )

    def observe(self, budget: Budget | None, now: float, grants: int, in_flight: int) -> float:
        """An answer (not a 429) and the budget it reports, if any. ``grants`` counts the slots
        handed out so far, ``in_flight`` those not answered yet: the server will count them
        after the remaining it reported. Returns how long every worker must hold because the
        budget is spent (0: no hold)."""
        self._grow(now)
        self._share_429 -= RECENT_WEIGHT * self._share_429
        if budget is None:
            return 0.0
        self._prune(now)
        window = self._windows.get(budget.limit)
        if window is None or self._is_new(window, budget, now):
            window = _Window(now + budget.seconds_left, budget.remaining)
            window.sampled_at, window.sampled_remaining = now, budget.remaining
            window.sampled_grants = grants
            self._windows[budget.limit] = window
        elif now >= window.end:
            return 0.0  # a late answer from a window that has already reset
        else:
            window.end = min(window.end, now + budget.seconds_left)
            window.remaining = min(window.remaining, budget.remaining)
            self._sample_others(window, now, grants)
        left = window.end - now
        spendable = window.remaining - _reserve(budget.limit, in_flight)
        window.seen_at, window.seen_left, window.seen_grants = now, spendable, grants
        if spendable <= 0:
            window.pace = 0.0
            self._bind(now)
            return left
        even = spendable / left
        # Others may be overestimated for a moment: keep a trickle rather than stop dead.
        window.pace = max(even - max(0.0, self.others_per_s), even * MIN_SHARE_OF_EVEN)
        self._bind(now)
        return 0.0

    def _is_new(self, window: _Window, budget: Budget, now: float) -> bool:
        slack = max(4.0, SLACK_SHARE * budget.limit)
        return budget.remaining > window.remaining + slack or now >= window.end + STALE_GRACE_S

    def _sample_others(self, window: _Window, now: float, grants: int) -> None:
        """Remaining falling faster than we send means someone else spends the same quota."""
        elapsed = now - window.sampled_at
        if elapsed < SAMPLE_S:
            return
        spent = window.sampled_remaining - window.remaining
        ours = grants - window.sampled_grants
        self.others_per_s += OTHERS_WEIGHT * ((spent - ours) / elapsed - self.others_per_s)
        window.sampled_at, window.sampled_remaining = now, window.remaining
        window.sampled_grants = grants

    def _grow(self, now: float) -> None:
        """Additive increase: 1% of the ceiling per second of answers (gaps count 1 s at most)."""
        elapsed = now - self._grown_at
        if elapsed <= 0:
            return
        self._grown_at = now
        if self._aimd < self._ceiling:
            step = self._ceiling * INCREASE_PER_S * min(elapsed, 1.0)
            self._aimd = min(self._ceiling, self._aimd + step)
            self._base_interval = 1.0 / self._aimd

    def _bind(self, at: float) -> None:
        """The slowest window still open at ``at`` sets the pace until its end."""
        open_windows = [w for w in self._windows.values() if w.end > at]
        slowest = min(open_windows, key=lambda w: w.pace, default=None)
        self._limit_applies = slowest is not None
        if slowest is None:
            self._limit_until = math.inf  # nothing to re-examine until the next answer
        else:
            self._limit_until = slowest.end
            self._limit_interval = 1.0 / slowest.pace if slowest.pace > 0 else math.inf

    def _prune(self, now: float) -> None:
        """Forget windows that reset a while ago. One that has just reset is kept a little
        longer, so that late answers from it are recognised and ignored."""
        for key in [k for k, w in self._windows.items() if w.end + STALE_GRACE_S <= now]:
            del self._windows[key]
