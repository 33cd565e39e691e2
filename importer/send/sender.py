"""Batch -> BatchResult: pace, send, retry, split, and map Braze's answer back to rows."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from importer.config import RetryPolicy
from importer.errors import AbortError, RateLimited, TransientError, Unreachable
from importer.models import Batch, BrazeObject, Item, RowFailure
from importer.send.client import (
    Accepted,
    Answer,
    BrazeClient,
    Refused,
    RefusedObject,
    Verdict,
    classify,
)
from importer.send.pacer import Pacer
from importer.send.packer import split


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request answered (or given up on): what happened to each of its rows."""

    batch: Batch
    status: int | None  # last HTTP status; None when no answer ever came
    attempts: int
    latency_s: float
    delivered: tuple[int, ...] = ()  # rows of ``batch`` (indices) Braze took
    failures: tuple[RowFailure, ...] = ()
    errors: int = 0  # entries in Braze's errors[]
    ambiguous: bool = False  # an attempt may have been applied before it was retried
    split: bool = False  # refused as a whole; its rows went on in two smaller requests
    accepted: dict[str, int] = field(default_factory=dict)  # objects Braze took, per array
    rate_limited: int = 0  # 429s met on the way


@dataclass(slots=True)
class _Attempts:
    total: int = 0
    transient: int = 0
    rate_limited: int = 0
    ambiguous: bool = False
    last_error: str = ""
    only_unreachable: bool = True


@dataclass(slots=True)
class SendCounters:
    retries: int = 0
    rate_limited: int = 0
    requests: int = 0
    ambiguous: int = 0
    in_flight: int = 0  # requests sent and not yet answered
    max_in_flight: int = 0


def backoff_s(policy: RetryPolicy, failures: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff, capped."""
    return rng.uniform(0, min(policy.cap_s, policy.base_s * 2 ** (failures - 1)))


def _failure(
    item: Item,
    code: str,
    message: str,
    attempts: int,
    objects: dict[str, list[BrazeObject]] | None = None,
) -> RowFailure:
    return RowFailure(
        ref=item.ref,
        stage="send",
        error=code,
        message=message,
        record=item.record,
        objects=item.objects() if objects is None else objects,
        attempts=attempts,
    )


def _contributors(batch: Batch, array: str, index: int) -> list[tuple[int, int]]:
    """The (item, position within that item's objects) pairs behind object ``index``."""
    owners = batch.owners.get(array, ())
    if not 0 <= index < len(owners):
        return []
    owner = owners[index]
    first = owners.index(owner)
    found = [(owner, index - first)]
    if array == "attributes":
        found.extend((more, 0) for more in batch.merged.get(index, ()))
    return found


def map_object_errors(
    batch: Batch, errors: tuple[RefusedObject, ...], attempts: int
) -> tuple[tuple[int, ...], tuple[RowFailure, ...]]:
    """Split a 2xx answer's rows into delivered (indices) and failed; a failure lists only the
    refused objects."""
    refused: dict[int, dict[str, dict[int, str]]] = {}
    for err in errors:
        for item_index, position in _contributors(batch, err.array, err.index):
            slots = refused.setdefault(item_index, {}).setdefault(err.array, {})
            slots[position] = err.type
    if not refused:
        return tuple(range(batch.rows)), ()
    items = batch.items()
    delivered: list[int] = []
    failed: list[RowFailure] = []
    for item_index, item in enumerate(items):
        by_array = refused.get(item_index)
        if by_array is None:
            delivered.append(item_index)
            continue
        objects = {a: [getattr(item, a)[p] for p in sorted(ps)] for a, ps in by_array.items()}
        reasons = "; ".join(f"{a}[{p}]: {t}" for a, ps in by_array.items() for p, t in ps.items())
        failed.append(
            RowFailure(
                ref=item.ref,
                stage="send",
                error="braze_rejected",
                message=f"Braze refused {reasons}",
                record=item.record,
                objects=objects,
                attempts=attempts,
                refused={a: sorted(ps) for a, ps in by_array.items()},
            )
        )
    return tuple(delivered), tuple(failed)


class Sender:
    """Sends one batch at a time per caller; many callers (workers) share one Sender."""

    def __init__(
        self,
        client: BrazeClient,
        pacer: Pacer,
        policy: RetryPolicy,
        on_result: Callable[[BatchResult], None],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._policy = policy
        self._on_result = on_result
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.counters = SendCounters()

    async def send(self, batch: Batch) -> None:
        """Deliver ``batch``; report one BatchResult per request answered. Raises AbortError."""
        tries = _Attempts()
        while True:
            await self._pacer.acquire()
            tries.total += 1
            answered = await self._attempt(batch, tries)
            if answered is None:
                if await self._give_up(batch, tries):
                    return
                continue
            await self._settle(batch, *answered, tries)
            return

    async def _attempt(self, batch: Batch, tries: _Attempts) -> tuple[Answer, Verdict] | None:
        """One POST. Returns the answer and its meaning, or None when it is worth retrying."""
        counters = self.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        answer: Answer | None = None
        try:
            answer = await self._client.post(batch.body)
            if answer.status != 429:
                self._pacer.on_response(answer.headers, time.time())
            return answer, classify(answer)
        except AbortError:
            if answer is not None:  # a 401/403 is an answer too: it gets its results line
                self._report(batch, answer, tries)
            raise
        except RateLimited as exc:
            tries.rate_limited += 1
            self.counters.rate_limited += 1
            tries.last_error = str(exc)
            headers = answer.headers if answer is not None else None
            self._pacer.on_rate_limited(exc.wait_s, headers, time.time())
        except TransientError as exc:
            self._pacer.on_no_answer()
            tries.transient += 1
            tries.last_error = str(exc)
            tries.only_unreachable &= isinstance(exc, Unreachable)
            tries.ambiguous |= exc.ambiguous
        finally:
            counters.in_flight -= 1
        return None

    async def _give_up(self, batch: Batch, tries: _Attempts) -> bool:
        """After a failed attempt: wait and return False to retry, or report and return True."""
        if tries.ambiguous and self._policy.on_ambiguous == "fail":
            message = f"Braze may or may not have applied this request: {tries.last_error}"
            failures = tuple(
                _failure(item, "ambiguous", message, tries.total) for item in batch.items()
            )
            self._report(batch, None, tries, failures=failures)
            return True
        exhausted = (
            tries.transient >= self._policy.attempts
            or tries.rate_limited > self._policy.max_rate_limit_waits
        )
        if not exhausted:
            self.counters.retries += 1
            if tries.transient:
                await self._sleep(backoff_s(self._policy, tries.transient, self._rng))
            return False
        if tries.only_unreachable and tries.transient:
            raise AbortError(
                f"endpoint unreachable after {tries.total} attempts: {tries.last_error}"
            )
        message = f"gave up after {tries.total} attempts: {tries.last_error}"
        failures = tuple(
            _failure(item, "retries_exhausted", message, tries.total) for item in batch.items()
        )
        self._report(batch, None, tries, failures=failures)
        return True

    async def _settle(
        self, batch: Batch, answer: Answer, outcome: Verdict, tries: _Attempts
    ) -> None:
        if isinstance(outcome, Accepted):
            delivered, failures = map_object_errors(batch, outcome.errors, tries.total)
            accepted = {a: batch.count(a) for a in batch.owners}
            for err in outcome.errors:
                if err.array in accepted and 0 <= err.index < batch.count(err.array):
                    accepted[err.array] -= 1
            self._report(
                batch,
                answer,
                tries,
                delivered=delivered,
                failures=failures,
                errors=len(outcome.errors),
                accepted=accepted,
            )
            return
        if isinstance(outcome, Refused) and outcome.errors:
            refused_rows, failures = map_object_errors(batch, outcome.errors, tries.total)
            # A 400 naming objects of every row needs no split to find the culprits.
            if not refused_rows:
                self._report(batch, answer, tries, failures=failures, errors=len(outcome.errors))
                return
        if batch.rows > 1:
            self._report(batch, answer, tries, split=True)
            for part in split(batch):  # usually two halves
                await self.send(part)
            return
        item = batch.items()[0]
        code = "refused" if isinstance(outcome, Refused) else "request_too_large"
        failure = _failure(item, code, outcome.message, tries.total)
        self._report(batch, answer, tries, failures=(failure,))

    def _report(
        self,
        batch: Batch,
        answer: Answer | None,
        tries: _Attempts,
        *,
        delivered: tuple[int, ...] = (),
        failures: tuple[RowFailure, ...] = (),
        errors: int = 0,
        split: bool = False,
        accepted: dict[str, int] | None = None,
    ) -> None:
        if tries.ambiguous:
            self.counters.ambiguous += 1
        self._on_result(
            BatchResult(
                batch=batch,
                status=answer.status if answer else None,
                attempts=tries.total,
                latency_s=answer.latency_s if answer else 0.0,
                delivered=delivered,
                failures=failures,
                errors=errors,
                ambiguous=tries.ambiguous,
                split=split,
                accepted=accepted or {},
                rate_limited=tries.rate_limited,
            )
        )
