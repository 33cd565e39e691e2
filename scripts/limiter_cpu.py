"""CPU of the limiter stack alone at the ceiling: workers looping acquire (+ a leaky bucket).

Why aiolimiter is not a dependency (docs/performance.md): sized so that no 3-second window can
exceed rate/20, its bucket spins under uvloop. The bucket variants need it installed by hand:
``.venv/bin/pip install aiolimiter``.

No network: each worker acquires a slot, then "waits for the answer" (``--latency-ms``, an
asyncio.sleep) and loops. Prints process CPU s / wall s, grants/s, the most grants any 3-second
sliding window held (by time.monotonic at grant), and the loop's timer counts per grant:
aiolimiter's ``_wake_next`` timers scheduled and fired (its spin), and all other call_later.

    .venv/bin/python scripts/limiter_cpu.py --bucket none          # the pacer alone
    .venv/bin/python scripts/limiter_cpu.py --bucket 2             # + AsyncLimiter sized capacity 2
    .venv/bin/python scripts/limiter_cpu.py --pacer off --bucket 2 # the bucket alone
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import time
from typing import Any

import uvloop

from importer.send import Pacer

try:
    from aiolimiter import AsyncLimiter
except ImportError:  # only --bucket needs it
    AsyncLimiter = None

RATE = 50_000


class CountingLoop(uvloop.Loop):  # type: ignore[misc]
    """uvloop, counting timers: aiolimiter's wake-ups apart from the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.wake_scheduled = 0
        self.wake_fired = 0
        self.wake_soon = 0
        self.other_timers = 0
        self._in_call_at = False

    def call_at(self, when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        if getattr(callback, "__name__", "") == "_wake_next":
            self.wake_scheduled += 1

            def fired(*a, wake=callback):  # type: ignore[no-untyped-def]
                self.wake_fired += 1
                wake(*a)

            callback = fired
        else:
            self.other_timers += 1
        self._in_call_at = True  # uvloop's call_at goes through call_later
        try:
            return super().call_at(when, callback, *args, **kwargs)
        finally:
            self._in_call_at = False

    def call_later(self, delay, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._in_call_at:
            self.other_timers += 1
        return super().call_later(delay, callback, *args, **kwargs)

    def call_soon(self, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        if getattr(callback, "__name__", "") == "_wake_next":
            self.wake_soon += 1  # a waiter's done-callback: partial(loop.call_soon, _wake_next)
        return super().call_soon(callback, *args, **kwargs)


def bucket_for(capacity: float, rate_per_minute: int) -> Any:
    """Capacity ``capacity``, draining as fast as ``capacity + 3 * drain <= rate / 20`` allows."""
    drain = (rate_per_minute // 20 - capacity) / 3.0
    return AsyncLimiter(capacity, capacity / drain)


def max_in_window(times: list[float], window: float) -> int:
    return max(
        (bisect.bisect_left(times, t + window, i) - i for i, t in enumerate(times)), default=0
    )


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, CountingLoop)
    pacer = Pacer(args.pacer_rate if args.pacer == "on" else 0)
    if args.bucket != "none" and AsyncLimiter is None:
        raise SystemExit("--bucket needs aiolimiter: .venv/bin/pip install aiolimiter")
    if args.bucket == "none":
        bucket = None
    elif ":" in args.bucket:  # max_rate:time_period, as given
        max_rate, period = args.bucket.split(":")
        bucket = AsyncLimiter(float(max_rate), float(period))
    else:
        bucket = bucket_for(float(args.bucket), RATE)
    grants: list[float] = []
    latency = args.latency_ms / 1000
    stop = time.monotonic() + args.seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            await pacer.acquire()
            if bucket is not None:
                await bucket.acquire()
            grants.append(time.monotonic())
            if latency:
                await asyncio.sleep(latency)
            else:
                await asyncio.sleep(0)

    counts = (loop.wake_scheduled, loop.wake_fired, loop.wake_soon, loop.other_timers)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.workers)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    sched, fired, soon, other = (
        now - before
        for now, before in zip(
            (loop.wake_scheduled, loop.wake_fired, loop.wake_soon, loop.other_timers),
            counts,
            strict=True,
        )
    )
    n = len(grants)
    desc = (
        "none" if bucket is None else f"AsyncLimiter({bucket.max_rate:g}, {bucket.time_period:.7f})"
    )
    print(
        f"pacer {args.pacer} {args.pacer_rate}/min, bucket {desc}, {args.workers} workers, "
        f"latency {args.latency_ms:g} ms: "
        f"CPU {cpu:.2f} s / wall {wall:.2f} s = {cpu / wall:.1%} of a core; "
        f"{n / wall:.1f} grants/s; max in any 3 s {max_in_window(grants, 3.0)} (limit "
        f"{RATE // 20}); per grant: bucket timers scheduled {sched / n:.3f}, "
        f"fired {fired / n:.3f}, done-callback wakes {soon / n:.3f}; other timers {other / n:.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pacer", choices=["on", "off"], default="on")
    parser.add_argument("--pacer-rate", type=int, default=RATE, help="the pacer's, per minute")
    parser.add_argument("--bucket", default="none", help="none, a capacity, or max_rate:period")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
