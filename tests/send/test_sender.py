"""The sender against a real sandbox over a socket: every line of the response table."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from importer.config import BatchLimits, RetryPolicy
from importer.errors import AbortError
from importer.models import Batch, Item, RowRef
from importer.sandbox import SandboxSettings, sandbox_in_thread
from importer.send.client import BrazeClient
from importer.send.pacer import Pacer
from importer.send.packer import pack
from importer.send.sender import BatchResult, Sender

FAST_RETRY = RetryPolicy(attempts=4, base_s=0.001, cap_s=0.01, request_timeout_s=5.0)
KEY = "sandbox-key"


def _items(count: int, *, events: int = 1) -> list[Item]:
    out = []
    for n in range(count):
        user = f"u{n}"
        out.append(
            Item(
                ref=RowRef("users.csv", n + 2),
                record={"id": user},
                user=f"external_id:{user}",
                attributes=({"external_id": user, "points": n},),
                events=tuple(
                    {"external_id": user, "name": f"e{k}", "time": "2024-01-02T03:04:05+00:00"}
                    for k in range(events)
                ),
            )
        )
    return out


def _batches(items: list[Item], limits: BatchLimits) -> list[Batch]:
    return [b for b in pack(items, limits) if isinstance(b, Batch)]


def _send(
    url: str,
    batches: list[Batch],
    *,
    key: str = KEY,
    policy: RetryPolicy = FAST_RETRY,
    rate: int = 0,
    workers: int = 4,
    pacer: Pacer | None = None,
) -> tuple[list[BatchResult], Sender]:
    results: list[BatchResult] = []

    async def main() -> Sender:
        async with BrazeClient(
            url, key, concurrency=workers, timeout_s=policy.request_timeout_s
        ) as c:
            paced = pacer or Pacer(rate)
            sender = Sender(c, paced, policy, results.append, rng=random.Random(1))
            queue = list(batches)

            async def worker() -> None:
                while queue:
                    await sender.send(queue.pop(0))

            await asyncio.gather(*(worker() for _ in range(workers)))
            return sender

    return results, asyncio.run(main())


def _lines(results: list[BatchResult], attr: str) -> list[int]:
    if attr == "delivered":
        return sorted(r.batch.refs[row].line for r in results for row in r.delivered)
    return sorted(f.ref.line for r in results for f in r.failures)


def test_all_delivered_and_every_object_reaches_the_server() -> None:
    items = _items(200)
    with sandbox_in_thread(SandboxSettings()) as sandbox:
        results, sender = _send(sandbox.url, _batches(items, BatchLimits(75, 75)))
        assert len(sandbox.accepted("attributes")) == 200
        assert len(sandbox.accepted("events")) == 200
    assert _lines(results, "delivered") == [i.ref.line for i in items]
    assert {r.status for r in results} == {201}
    assert sender.counters.requests == len(results) == 6


def test_errors_in_a_201_fail_only_their_rows_and_list_only_refused_objects() -> None:
    items = _items(10, events=2)
    settings = SandboxSettings(blocked_external_ids=frozenset({"u3", "u7"}))
    with sandbox_in_thread(settings) as sandbox:
        results, _ = _send(sandbox.url, _batches(items, BatchLimits(75, 75)))
        accepted_users = {o["external_id"] for o in sandbox.accepted("events")}
    assert _lines(results, "failed") == [5, 9]  # u3 is on line 5, u7 on line 9
    failure = next(f for r in results for f in r.failures if f.ref.line == 5)
    assert failure.stage == "send" and failure.error == "braze_rejected"
    assert failure.objects is not None
    assert {o["external_id"] for objs in failure.objects.values() for o in objs} == {"u3"}
    assert len(failure.objects["events"]) == 2 and len(failure.objects["attributes"]) == 1
    assert "u3" not in accepted_users and "u2" in accepted_users
    assert results[0].accepted == {"attributes": 8, "events": 16}


def test_max_input_length_splits_until_requests_fit() -> None:
    items = _items(30)  # 60 objects per request: over the sandbox's mau50 limit
    with sandbox_in_thread(SandboxSettings(batch_mode="mau50")) as sandbox:
        results, _ = _send(sandbox.url, _batches(items, BatchLimits(75, 75)))
        assert len(sandbox.accepted("attributes")) == 30
    split = [r for r in results if r.split]
    assert [r.status for r in split] == [400]
    assert sorted(r.batch.label for r in results if not r.split) == ["1.1", "1.2"]
    assert _lines(results, "delivered") == list(range(2, 32))


def test_a_refused_batch_is_split_until_the_bad_row_is_isolated() -> None:
    items = _items(8)
    settings = SandboxSettings(poisoned_external_ids=frozenset({"u5"}))  # u5 is on line 7
    with sandbox_in_thread(settings) as sandbox:
        results, _ = _send(sandbox.url, _batches(items, BatchLimits(75, 75)))
        assert len(sandbox.accepted("attributes")) == 7
    assert _lines(results, "failed") == [7]
    (failure,) = [f for r in results for f in r.failures]
    assert failure.error == "refused" and "Bad Request" in failure.message
    assert _lines(results, "delivered") == [i.ref.line for i in items if i.ref.line != 7]
    # 8 rows -> 4+4 -> 2+2 -> 1+1: three refused requests on the way down to line 7.
    assert [r.batch.label for r in results if r.split] == ["1", "1.2", "1.2.1"]


def test_server_errors_are_retried_then_delivered() -> None:
    items = _items(60)
    settings = SandboxSettings(p_500=0.3, p_503=0.2, seed=7)
    policy = RetryPolicy(attempts=30, base_s=0.001, cap_s=0.005, request_timeout_s=5.0)
    with sandbox_in_thread(settings) as sandbox:
        results, sender = _send(sandbox.url, _batches(items, BatchLimits(5, 5)), policy=policy)
        assert sandbox.stats.faults.get("500", 0) + sandbox.stats.faults.get("503", 0) > 0
    assert _lines(results, "delivered") == [i.ref.line for i in items]
    assert sender.counters.retries > 0
    assert max(r.attempts for r in results) > 1


def test_retries_exhausted_fail_every_row_of_the_batch() -> None:
    items = _items(5)
    with sandbox_in_thread(SandboxSettings(p_503=1.0)) as sandbox:
        results, _ = _send(sandbox.url, _batches(items, BatchLimits(75, 75)))
        assert sandbox.stats.requests == FAST_RETRY.attempts
    (result,) = results
    assert result.status is None
    assert {f.error for f in result.failures} == {"retries_exhausted"}
    assert all(f.attempts == FAST_RETRY.attempts for f in result.failures)


def test_429_pauses_and_retries() -> None:
    items = _items(40)
    settings = SandboxSettings(limit_per_3s=3)
    with sandbox_in_thread(settings) as sandbox:
        results, sender = _send(sandbox.url, _batches(items, BatchLimits(10, 10)), workers=4)
        assert sandbox.stats.rate_limited >= 1
    assert _lines(results, "delivered") == [i.ref.line for i in items]
    assert sender.counters.rate_limited >= 1


class FakeClock:
    """The pacer's time: its pauses pass at once (the sandbox keeps the real clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.mark.parametrize("budget", [True, False])
def test_a_spurious_429_costs_its_wait_and_cuts_the_pace_only_without_a_budget(
    budget: bool,
) -> None:
    # Seed 0: the 4th and 9th requests draw a 429 (Retry-After 1 s); one worker, in order.
    settings = SandboxSettings(p_429=0.3, seed=0, limit_per_minute=50_000 if budget else None)
    clock = FakeClock()
    pacer = Pacer(6000, clock=clock, sleep=clock.sleep)
    with sandbox_in_thread(settings) as sandbox:
        results, _ = _send(
            sandbox.url, _batches(_items(8), BatchLimits(2, 2)), workers=1, pacer=pacer
        )
        assert sandbox.stats.faults == {"429": 2}
    assert sorted(r.rate_limited for r in results) == [0] * 6 + [1, 1]
    assert pacer.waited_s == pytest.approx(2.0)
    ceiling = 6000 / 1.001
    # A budget of 50,000 a minute, nearly untouched: blips. No budget at all: careful (halved,
    # then growing back slowly).
    if budget:
        assert pacer.current_rate_per_minute == pytest.approx(ceiling)
    else:
        assert ceiling / 2 <= pacer.current_rate_per_minute < 0.6 * ceiling


def test_dropped_connections_are_retried_and_marked_ambiguous() -> None:
    items = _items(20)
    settings = SandboxSettings(p_drop=0.5, seed=3)
    policy = RetryPolicy(attempts=40, base_s=0.001, cap_s=0.005, request_timeout_s=5.0)
    with sandbox_in_thread(settings) as sandbox:
        results, sender = _send(sandbox.url, _batches(items, BatchLimits(2, 2)), policy=policy)
        assert sandbox.stats.faults.get("drop", 0) > 0
    assert _lines(results, "delivered") == [i.ref.line for i in items]
    assert sender.counters.ambiguous == sum(r.ambiguous for r in results) > 0


@pytest.mark.parametrize("key", ["wrong-key", ""])
def test_401_aborts(key: str) -> None:
    with sandbox_in_thread(SandboxSettings()) as sandbox, pytest.raises(AbortError, match="401"):
        _send(sandbox.url, _batches(_items(3), BatchLimits(75, 75)), key=key)


def test_403_aborts() -> None:
    settings = SandboxSettings(forbidden_api_keys=frozenset({"no-users-track"}))
    with sandbox_in_thread(settings) as sandbox, pytest.raises(AbortError, match="403"):
        _send(sandbox.url, _batches(_items(3), BatchLimits(75, 75)), key="no-users-track")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_aborts_after_retries() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(AbortError, match="unreachable"):
        _send(url, _batches(_items(3), BatchLimits(75, 75)))


def test_slow_answers_time_out_as_ambiguous_and_fail_when_exhausted() -> None:
    policy = RetryPolicy(attempts=2, base_s=0.001, cap_s=0.001, request_timeout_s=0.2)
    with sandbox_in_thread(SandboxSettings(latency_ms=1000)) as sandbox:
        results, sender = _send(
            sandbox.url, _batches(_items(2), BatchLimits(75, 75)), policy=policy
        )
        assert sandbox.stats.requests == 2
    (result,) = results
    assert result.ambiguous and sender.counters.ambiguous == 1
    assert {f.error for f in result.failures} == {"retries_exhausted"}
