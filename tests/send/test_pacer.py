"""The pacer, on a fake clock: even spacing, no burst, 3-second windows, 429 pauses."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
import selectors
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.sandbox.ratelimit import RateLimiter
from importer.sandbox.settings import SandboxSettings
from importer.send.pacer import Pacer
from importer.send.rate_control import Budget, parse_budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _grants(pacer: Pacer, clock: FakeClock, count: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        times.append(clock.now)

    async def main() -> None:
        for _ in range(count):
            await one()

    asyncio.run(main())
    return times


def test_slots_are_evenly_spaced_and_start_without_a_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(50_000, clock=clock, sleep=clock.sleep)
    times = _grants(pacer, clock, 500)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 60 / 50_000 - 1e-9
    assert times[0] == 1000.0


def test_no_three_second_window_exceeds_rate_over_twenty() -> None:
    clock = FakeClock()
    rate = 1_200
    times = _grants(Pacer(rate, clock=clock, sleep=clock.sleep), clock, 200)
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 3.0)
        assert in_window <= rate // 20


def test_concurrent_waiters_share_one_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer(600, clock=clock, sleep=clock.sleep)  # one per 0.1 s
    times: list[float] = []

    async def worker() -> None:
        for _ in range(5):
            await pacer.acquire()
            times.append(clock.now)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(4)))

    asyncio.run(main())
    times.sort()
    assert len(times) == 20
    assert times[-1] - times[0] >= 19 * 0.1 - 1e-6


def test_pause_holds_every_worker_until_the_server_wait_is_over() -> None:
    clock = FakeClock()
    pacer = Pacer(0, clock=clock, sleep=clock.sleep)
    assert not pacer.enabled
    pacer.pause(30.0)
    times = _grants(pacer, clock, 3)
    assert all(t >= 1030.0 for t in times)
    assert pacer.waited_s == 30.0


def test_a_pause_during_a_wait_is_honoured() -> None:
    clock = FakeClock()
    pacer = Pacer(60, clock=clock, sleep=clock.sleep)  # one per second
    times: list[float] = []

    async def main() -> None:
        await pacer.acquire()  # t=1000
        waiter = asyncio.create_task(pacer.acquire())  # reserved for t=1001
        await asyncio.sleep(0)
        pacer.pause(10.0)
        await waiter
        times.append(clock.now)

    asyncio.run(main())
    assert times[0] >= 1010.0


def test_rate_zero_never_waits() -> None:
    clock = FakeClock()
    times = _grants(Pacer(0, clock=clock, sleep=clock.sleep), clock, 100)
    assert set(times) == {1000.0}


# --- Adaptive pace: parsing, AIMD, long waits (FakeClock, one caller at a time) ---------------

EPOCH = 1_700_000_040.0  # a whole minute and a whole 3 seconds since the epoch


def _rate_per_s(pacer: Pacer) -> float:
    return pacer.current_rate_per_minute / 60


def test_reset_is_read_in_both_forms() -> None:
    now_epoch = EPOCH + 10
    as_delta = parse_budget(_headers(1000, 400, "50"), now_epoch)
    as_epoch = parse_budget(_headers(1000, 400, str(int(now_epoch) + 50)), now_epoch)
    assert as_delta == as_epoch == Budget(limit=1000, remaining=400, seconds_left=50)
    assert parse_budget(_headers(1000, 400, str(int(now_epoch) - 5)), now_epoch) is None  # past
    assert parse_budget({"x-ratelimit-remaining": "4"}, now_epoch) is None
    assert parse_budget(_headers(1000, 400, "soon"), now_epoch) is None
    assert parse_budget(_headers(1000, 400, "nan"), now_epoch) is None
    assert parse_budget({**_headers(1000, 400, "5"), "x-ratelimit-limit": "inf"}, 0) is None
    no_limit = parse_budget({"x-ratelimit-remaining": "4", "x-ratelimit-reset": "2"}, now_epoch)
    assert no_limit == Budget(limit=0, remaining=4, seconds_left=2)


def test_both_reset_forms_steer_to_the_same_pace() -> None:
    paces = []
    for reset in ("60", str(int(EPOCH) + 60)):
        clock = FakeClock()
        pacer = Pacer(50_000, clock=clock, sleep=clock.sleep)
        pacer.on_response(_headers(6000, 5999, reset), EPOCH)
        paces.append(pacer.current_rate_per_minute)
    # 5999 left, minus a reserve of 0.5% of the limit, spread over the 60 s to the reset.
    assert paces[0] == paces[1] == pytest.approx((5999 - 30) / 60 * 60)


def test_requests_in_flight_are_taken_off_the_budget() -> None:
    clock = FakeClock()
    pacer = Pacer(50_000, clock=clock, sleep=clock.sleep)
    _grants(pacer, clock, 41)
    for _ in range(20):
        pacer.on_no_answer()  # timeouts: no longer in flight
    pacer.on_response(_headers(6000, 1000, "10"), EPOCH)  # 20 still in flight
    assert pacer.current_rate_per_minute == pytest.approx((1000 - 30 - 20) / 10 * 60)


def test_a_server_budget_never_lifts_the_pace_above_the_ceiling() -> None:
    clock = FakeClock()
    pacer = Pacer(600, clock=clock, sleep=clock.sleep)
    pacer.on_response(_headers(50_000, 49_999, "60"), EPOCH)
    assert pacer.current_rate_per_minute == pytest.approx(600 / 1.001)


def test_a_spent_budget_holds_everyone_until_the_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(50_000, clock=clock, sleep=clock.sleep, wall_clock=lambda: EPOCH + clock.now)
    pacer.on_response(_headers(10_000, 3, "1800"), EPOCH + clock.now)  # an hourly quota spent
    assert pacer.paused_until == pytest.approx(1000 + 1800)
    assert pacer.long_wait_until == pytest.approx(EPOCH + 1000 + 1800)
    times = _grants(pacer, clock, 2)
    assert times[0] == pytest.approx(2800)
    assert pacer.long_wait_until is None  # the wait is over


def test_a_long_retry_after_pauses_everyone_and_says_until_when() -> None:
    clock = FakeClock()
    pacer = Pacer(6000, clock=clock, wall_clock=lambda: EPOCH + clock.now)  # loop's sleep
    times: list[float] = []

    async def worker() -> None:
        await pacer.acquire()
        times.append(clock.now)

    async def main() -> None:
        await pacer.acquire()
        waiters = [asyncio.create_task(worker()) for _ in range(5)]  # slots reserved already
        await asyncio.sleep(0)
        pacer.on_rate_limited(1800.0)
        assert pacer.long_wait_until == EPOCH + 1000 + 1800
        await asyncio.gather(*waiters)

    _run_on_virtual_time(clock, main())
    assert min(times) == 2800
    assert pacer.waited_s == 1800
    assert pacer.long_wait_until is None  # over


def test_a_short_wait_is_not_a_long_wait() -> None:
    clock = FakeClock()
    pacer = Pacer(6000, clock=clock, sleep=clock.sleep)
    pacer.on_rate_limited(3.0)
    assert pacer.long_wait_until is None
    assert pacer.paused_until == 1003.0


def test_aimd_halves_on_a_429_then_recovers_to_the_ceiling_never_above() -> None:
    clock = FakeClock()
    pacer = Pacer(6000, clock=clock, sleep=clock.sleep)
    ceiling = 6000 / 1.001

    async def send(count: int) -> list[float]:
        rates = []
        for _ in range(count):
            await pacer.acquire()
            pacer.on_response({}, EPOCH + clock.now)  # a server that reports no budget
            rates.append(pacer.current_rate_per_minute)
        return rates

    async def main() -> list[float]:
        await send(100)
        pacer.on_rate_limited(2.0)
        pacer.on_rate_limited(1.9)  # the answers in flight: the same episode, no second cut
        assert pacer.current_rate_per_minute == pytest.approx(ceiling / 2)
        return await send(6000)

    rates = asyncio.run(main())
    assert all(b >= a for a, b in itertools.pairwise(rates))  # additive increase
    assert max(rates) <= ceiling + 1e-9
    assert rates[-1] == pytest.approx(ceiling)
    # 1% of the ceiling per second: back from half to full in about 50 s, not at once.
    back_at = next(i for i, rate in enumerate(rates) if rate >= ceiling - 1e-9)
    assert 3000 < back_at < 4500


def test_rate_zero_ignores_budgets_but_honours_429s() -> None:
    clock = FakeClock()
    pacer = Pacer(0, clock=clock, sleep=clock.sleep)
    pacer.on_response(_headers(100, 0, "30"), EPOCH)
    assert pacer.paused_until == 0.0
    assert pacer.current_rate_per_minute == 0.0
    pacer.on_rate_limited(5.0)
    assert _grants(pacer, clock, 1) == [1005.0]


_event = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 40)),
    st.tuples(st.just("ok"), st.integers(0, 6000), st.floats(0.5, 120), st.booleans()),
    st.tuples(st.just("429"), st.floats(0, 90)),
    st.tuples(st.just("idle"), st.floats(0, 5)),
)


@settings(max_examples=150, deadline=None)
@given(rate=st.sampled_from([60, 1_200, 6_000, 50_000]), events=st.lists(_event, max_size=40))
def test_no_three_second_window_exceeds_rate_over_twenty_whatever_the_server_says(
    rate: int, events: list[tuple[Any, ...]]
) -> None:
    clock = FakeClock()
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def main() -> None:
        for event in events:
            if event[0] == "send":
                for _ in range(event[1]):
                    await pacer.acquire()
                    times.append(clock.now)
            elif event[0] == "ok":
                _, remaining, seconds, as_epoch = event
                reset = EPOCH + clock.now + seconds if as_epoch else seconds
                pacer.on_response(_headers(6000, remaining, str(reset)), EPOCH + clock.now)
            elif event[0] == "429":
                pacer.on_rate_limited(event[1])
            else:
                clock.now += event[1]
            assert pacer.current_rate_per_minute <= rate

    asyncio.run(main())
    assert _max_in_window(times, 3.0) <= rate // 20


def _headers(limit: int, remaining: int, reset: str) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": reset,
    }


def _max_in_window(times: list[float], width: float) -> int:
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + width) - i for i, t in enumerate(ordered)), default=0
    )


# --- Simulations: many workers against the sandbox's rate limiter, on virtual time -----------
#
# FakeClock.sleep above moves time for one sleeper at a time, which cannot model 64 workers
# waiting at once. Here the event loop itself runs on virtual time: whenever nothing is ready,
# its selector jumps the clock to the next timer instead of blocking. Real asyncio.sleep, real
# scheduling, no real waiting: ten simulated minutes take a few seconds.


class _VirtualSelector(selectors.SelectSelector):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("simulation deadlock: nothing ready, no timer pending")
            self._clock.now += timeout
        return ready


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(_VirtualSelector(clock))
        self._virtual_clock = clock

    def time(self) -> float:
        return self._virtual_clock.now


@dataclass
class _Sim:
    """Figures of one simulated run."""

    minutes: float
    grants: list[float] = field(default_factory=list)
    ok: int = 0
    rate_limited: int = 0
    others_ok: int = 0
    others_rate_limited: int = 0
    lowest_remaining: float = math.inf
    pacer_sleeps: int = 0
    pacer: Pacer | None = None
    long_waits: set[float | None] = field(default_factory=set)  # as shown after each 429
    # Every 10 s: (current_rate_per_minute, others_rate_per_minute), as a progress line would.
    readings: list[tuple[float, float]] = field(default_factory=list)
    wait_asked_s: float = 0.0  # the union of the waits the 429s asked for
    asked_until: float = 0.0

    @property
    def requests(self) -> int:
        return self.ok + self.rate_limited

    def asked(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until > self.asked_until:
            self.wait_asked_s += until - max(now, self.asked_until)
            self.asked_until = until

    def note(self, headers: dict[str, str]) -> None:
        if "x-ratelimit-remaining" in headers:
            remaining = float(headers["x-ratelimit-remaining"])
            self.lowest_remaining = min(self.lowest_remaining, remaining)


def _simulate(
    rate: int,
    seconds: float,
    *,
    workers: int = 64,
    latency_s: float = 0.05,
    others_per_s: float = 0.0,
    send_budget_headers: bool = True,
    timers_late_s: float = 0.0,
    spurious_429: float = 0.0,
    **limits: Any,
) -> _Sim:
    """``workers`` loops of acquire -> the sandbox's RateLimiter -> on_response/on_rate_limited,
    each answer taking ``latency_s`` (+ up to 10 ms, so answers arrive out of order). The
    pacer's timers fire up to ``timers_late_s`` late, as in a loop busy packing batches. This
    share of admitted requests is answered by a spurious 429 asking for 1 s, as the sandbox's
    ``p_429`` does."""
    clock = FakeClock()

    def wall() -> float:  # the server's clock: the run starts just after a whole minute
        return EPOCH + 0.5 + (clock.now - 1000)

    server = RateLimiter(SandboxSettings(**limits), clock=wall)
    sim = _Sim(minutes=seconds / 60)
    rng = random.Random(7)
    end = clock.now + seconds

    async def counted_sleep(delay: float) -> None:
        sim.pacer_sleeps += 1
        await asyncio.sleep(delay + rng.uniform(0, timers_late_s))

    pacer = sim.pacer = Pacer(rate, clock=clock, sleep=counted_sleep, wall_clock=wall)

    async def worker() -> None:
        while clock.now < end:
            await pacer.acquire()
            sim.grants.append(clock.now)
            await asyncio.sleep(latency_s / 2 + rng.uniform(0, 0.005))
            admitted, headers = server.admit()
            if spurious_429 and admitted and rng.random() < spurious_429:
                admitted, headers = False, {"X-Ratelimit-Retry-After": "1"}
            await asyncio.sleep(latency_s / 2 + rng.uniform(0, 0.005))
            sim.note(headers)
            if admitted:
                sim.ok += 1
                pacer.on_response(headers if send_budget_headers else {}, wall())
            else:
                sim.rate_limited += 1
                sim.asked(clock.now, float(headers["X-Ratelimit-Retry-After"]))
                pacer.on_rate_limited(float(headers["X-Ratelimit-Retry-After"]))
                sim.long_waits.add(pacer.long_wait_until)

    async def other_client() -> None:
        while clock.now < end:
            await asyncio.sleep(1 / others_per_s)
            admitted, headers = server.admit()
            sim.note(headers)
            sim.others_ok += admitted
            sim.others_rate_limited += not admitted

    async def reader() -> None:
        while clock.now < end:
            await asyncio.sleep(10)
            sim.readings.append((pacer.current_rate_per_minute, pacer.others_rate_per_minute))

    async def main() -> None:
        tasks = [worker() for _ in range(workers)] + [reader()]
        await asyncio.gather(*tasks, *([other_client()] if others_per_s else []))

    _run_on_virtual_time(clock, main())
    assert _max_in_window(sim.grants, 3.0) <= rate // 20  # whatever the scenario
    return sim


def _run_on_virtual_time(clock: FakeClock, main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=lambda: _VirtualTimeLoop(clock)) as runner:
        runner.run(main)


@pytest.mark.parametrize("reset_header", ["delta", "epoch"])
def test_a_server_limit_below_rate_is_met_without_a_429(reset_header: str) -> None:
    sim = _simulate(50_000, 179, limit_per_minute=6000, reset_header=reset_header)
    assert sim.rate_limited == 0
    # Three minute windows of 6,000 (ending 0.5 s early): the pace converges on the server's,
    # with little left unused.
    assert 0.98 * 18_000 <= sim.ok <= 18_000
    assert sim.pacer is not None
    steady = [rate for rate, _ in sim.readings[3:]]
    assert sum(steady) / len(steady) == pytest.approx(6000, rel=0.02)


@pytest.mark.parametrize("reset_header", ["delta", "epoch"])
def test_a_second_client_on_the_same_quota_never_meets_an_empty_window(reset_header: str) -> None:
    sim = _simulate(50_000, 179, limit_per_minute=6000, reset_header=reset_header, others_per_s=30)
    assert sim.rate_limited == sim.others_rate_limited == 0
    assert sim.lowest_remaining > 0
    assert sim.pacer is not None
    others = [measured for _, measured in sim.readings[3:]]
    assert sum(others) / len(others) == pytest.approx(1800, rel=0.1)  # measured, not told
    assert sim.pacer.waited_s < 0.5  # at most a moment before a reset
    # The other client spends 1,800 of each minute's 6,000; we take most of the rest.
    assert sim.others_ok == pytest.approx(179 * 30, abs=2)
    assert 0.97 * (18_000 - 5400) <= sim.ok <= 18_000 - 179 * 30


def test_an_hourly_quota_spent_means_one_long_wait_not_hammering() -> None:
    # No budget headers: the server says so only with 429s (Retry-After: up to the hour's end).
    sim = _simulate(50_000, 60, limit_per_hour=500, send_budget_headers=False)
    hour_end = 1_700_002_800  # the next whole hour after EPOCH
    resume_at = 1000 + hour_end - (EPOCH + 0.5)  # on the loop's clock
    assert sim.rate_limited <= 64  # only the requests already in flight
    # What the progress line shows: the hour's end (Retry-After is whole seconds, hence + 1).
    assert all(hour_end <= until < hour_end + 1 for until in sim.long_waits if until)
    before = [t for t in sim.grants if t < resume_at]
    assert len(before) == 500 + sim.rate_limited
    assert max(before) < 1001  # after the first 429, nobody sent until the hour was over
    assert min(t for t in sim.grants if t >= resume_at) < resume_at + 1


def test_at_braze_limits_the_ceiling_is_the_pace_and_no_429_comes() -> None:
    # 50,000 per minute and 3,000 per 3 s (Braze's), --rate 50,000: a full minute plus.
    sim = _simulate(50_000, 65, limit_per_minute=50_000, limit_per_3s=3000)
    assert sim.rate_limited == 0
    assert sim.ok / 65 >= 0.98 * 50_000 / 60
    assert _max_in_window(sim.grants, 3.0) <= 50_000 // 20
    # Cheap: one sleep per waiter, no polling.
    assert sim.pacer_sleeps <= len(sim.grants)


def test_timers_that_fire_late_do_not_bunch_requests_into_a_3_second_window() -> None:
    # Late timers release several waiters at once; the 3-second guard holds them back.
    # (_simulate asserts the 3-second windows of every scenario.)
    sim = _simulate(50_000, 20, limit_per_3s=3000, timers_late_s=0.02)
    assert sim.rate_limited == 0
    assert sim.ok / 20 >= 0.98 * 50_000 / 60


@pytest.mark.parametrize("send_budget_headers", [True, False])
def test_against_6000_per_minute_with_a_ceiling_of_50000_429s_stay_under_2_percent(
    send_budget_headers: bool,
) -> None:
    sim = _simulate(50_000, 600, limit_per_minute=6000, send_budget_headers=send_budget_headers)
    assert sim.rate_limited < 0.02 * sim.requests
    assert sim.ok >= (0.98 if send_budget_headers else 0.9) * 60_000
    assert _max_in_window(sim.grants, 3.0) <= 50_000 // 20
    print(
        f"6,000/min server, --rate 50,000, budget headers {send_budget_headers}: "
        f"{sim.requests} requests in 10 min, {sim.ok} accepted, {sim.rate_limited} 429s "
        f"({100 * sim.rate_limited / sim.requests:.2f}%)"
    )


def test_spurious_429s_cost_the_waits_they_ask_for_and_no_more() -> None:
    # Braze's limits; 1% of answers a 429 asking for 1 s while the budget is far from spent.
    seconds = 60
    sim = _simulate(50_000, seconds, limit_per_minute=50_000, limit_per_3s=3000, spurious_429=0.01)
    assert sim.pacer is not None
    assert sim.rate_limited > 20
    assert sim.pacer.waited_s == pytest.approx(sim.wait_asked_s, abs=0.1)
    # The accepted requests at the ceiling, plus the pauses: the run took no longer.
    clean_s = sim.ok / (50_000 / 60)
    assert seconds <= (clean_s + sim.wait_asked_s) * 1.05
    # And the pace was back at the ceiling at every reading.
    assert all(rate == pytest.approx(50_000 / 1.001) for rate, _ in sim.readings)
