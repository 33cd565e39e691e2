"""What the sandbox saw: counters, concurrency and per-user ordering violations.

Mutated only on the server's event loop; ``snapshot()`` may be called from another thread (tests
using ``sandbox_in_thread``): it copies with ``dict()``/``tuple()``, which are atomic under the GIL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class SandboxStats:
    requests: int  # every request received, whatever its answer
    statuses: Mapping[int, int]  # answers by HTTP status (dropped connections not included)
    accepted: Mapping[str, int]  # accepted objects by array
    rejected_objects: int  # objects answered in errors[]
    rate_limited: int  # 429s, from the limit or injected
    # The union of the waits the 429s asked for ([answered, answered + Retry-After] each): the
    # least time a client that honours them must spend paused (scripts/faults.py compares).
    wait_asked_s: float
    # Injected faults: "429", "500", "503", "slow", "drop" (all drops) and "drop_applied" (the
    # dropped requests whose objects were applied before the connection was closed).
    faults: Mapping[str, int]
    in_flight: int  # requests being handled right now
    max_concurrent: int  # most requests handled at once
    user_overlaps: int  # a user's attributes in two requests in flight at once
    overlap_examples: tuple[str, ...]  # a few of them, e.g. "external_id:42 in #7 and #9"


class StatsBook:
    def __init__(self) -> None:
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.accepted = {"attributes": 0, "events": 0, "purchases": 0}
        self.rejected_objects = 0
        self.rate_limited = 0
        self.wait_asked_s = 0.0
        self._asked_until = 0.0  # end of the latest asked wait (monotonic)
        self.faults: dict[str, int] = {}
        self.in_flight = 0
        self.max_concurrent = 0
        self.user_overlaps = 0
        self.overlap_examples: list[str] = []
        self._users: dict[str, list[int]] = {}  # user -> numbers of the requests holding it

    def begin(self) -> int:
        """A request arrived; returns its number (1-based)."""
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.max_concurrent:
            self.max_concurrent = self.in_flight
        return self.requests

    def end(self, status: int | None) -> None:
        self.in_flight -= 1
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 429:
                self.rate_limited += 1

    def asked_to_wait(self, now: float, seconds: float) -> None:
        """A 429 answered at ``now`` (monotonic, never earlier than the previous call's)."""
        until = now + seconds
        if until > self._asked_until:
            self.wait_asked_s += until - max(now, self._asked_until)
            self._asked_until = until

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def hold_users(self, number: int, users: Iterable[str]) -> tuple[str, ...]:
        """Mark ``users`` as having attributes in request ``number``; count overlaps."""
        held = []
        for user in users:
            holders = self._users.get(user)
            if holders:
                self.user_overlaps += 1
                if len(self.overlap_examples) < MAX_EXAMPLES:
                    self.overlap_examples.append(f"{user} in #{holders[0]} and #{number}")
                holders.append(number)
            else:
                self._users[user] = [number]
            held.append(user)
        return tuple(held)

    def release_users(self, number: int, users: Iterable[str]) -> None:
        for user in users:
            holders = self._users[user]
            holders.remove(number)
            if not holders:
                del self._users[user]

    def snapshot(self) -> SandboxStats:
        return SandboxStats(
            requests=self.requests,
            statuses=dict(self.statuses),
            accepted=dict(self.accepted),
            rejected_objects=self.rejected_objects,
            rate_limited=self.rate_limited,
            wait_asked_s=self.wait_asked_s,
            faults=dict(self.faults),
            in_flight=self.in_flight,
            max_concurrent=self.max_concurrent,
            user_overlaps=self.user_overlaps,
            overlap_examples=tuple(self.overlap_examples),
        )
