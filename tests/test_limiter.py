"""The pacer, on a fake clock: even spacing, no burst, 3-second windows, 429 pauses."""

from __future__ import annotations

import asyncio

from importer.limiter import Pacer


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
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
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
