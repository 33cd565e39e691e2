"""Ask ``POST /users/export/ids`` for users, ``MAX_EXPORT_IDS`` at a time, at the pacer's pace.

The sending pieces are the importer's (importer.send): ``BrazeClient`` on the export path, the
``Pacer`` (a 429 pauses every asker for the server's wait), ``classify`` and the retry policy's
capped, jittered backoff for 5xx, timeouts and dropped connections. An export only reads, so a
request whose answer was lost is simply asked again. A refused request (400) or key (401/403)
aborts: exit 3.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from importer.config import RetryPolicy
from importer.errors import AbortError, RateLimited, TransientError
from importer.rules import EXPORT_PATH, MAX_EXPORT_IDS
from importer.send import BrazeClient, Pacer, backoff_s, classify
from importer.verify.report import VerifyReporter

_CONCURRENCY = 8  # requests in flight at most (the pacer decides how many per second)

Found = dict[str, dict[str, Any] | None]  # user key -> the exported user, None: not returned


@dataclass(slots=True)
class AskCounters:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


def identifier_body(users: Sequence[str], fields: Sequence[str]) -> bytes:
    """The request for ``users`` (importer user keys: external ids and aliases only)."""
    external_ids: list[str] = []
    aliases: list[dict[str, str]] = []
    for user in users:
        kind, _, rest = user.partition(":")
        if kind == "external_id":
            external_ids.append(rest)
        else:
            label, _, name = rest.partition(":")
            aliases.append({"alias_name": name, "alias_label": label})
    body: dict[str, Any] = {"fields_to_export": list(fields)}
    if external_ids:
        body["external_ids"] = external_ids
    if aliases:
        body["user_aliases"] = aliases
    return orjson.dumps(body)


def _keys_of(user: dict[str, Any]) -> list[str]:
    keys = []
    if isinstance(user.get("external_id"), str):
        keys.append(f"external_id:{user['external_id']}")
    for alias in user.get("user_aliases") or ():
        if isinstance(alias, dict):
            keys.append(f"user_alias:{alias.get('alias_label')}:{alias.get('alias_name')}")
    return keys


def matched(users: Sequence[str], payload: Any) -> Found:
    """Each asked user's object in an answer (matched on external_id and aliases, never on
    the order: docs/braze.md, Exporting profiles)."""
    found: Found = dict.fromkeys(users)
    exported = payload.get("users") if isinstance(payload, dict) else None
    if not isinstance(exported, list):
        raise AbortError("the export answer holds no users array")
    for user in exported:
        if not isinstance(user, dict):
            continue
        for key in _keys_of(user):
            if key in found:
                found[key] = user
    return found


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


class ProfileAsker:
    """Asks for profiles; many tasks may share one asker (the pacer spaces them)."""

    def __init__(
        self,
        client: BrazeClient,
        pacer: Pacer,
        policy: RetryPolicy,
        fields: Sequence[str],
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._policy = policy
        self._fields = list(fields)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.counters = AskCounters()

    async def ask_all(
        self,
        users: Sequence[str],
        concurrency: int,
        on_done: Callable[[int], None] | None = None,
    ) -> Found:
        chunks = [users[n : n + MAX_EXPORT_IDS] for n in range(0, len(users), MAX_EXPORT_IDS)]
        queue: asyncio.Queue[Sequence[str]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)
        found: Found = {}

        async def worker() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                found.update(await self.ask(chunk))
                if on_done is not None:
                    on_done(len(chunk))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, min(concurrency, len(chunks)))):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise _first(failed) from None  # one asker's abort stopped the others: say why
        return found

    async def ask(self, users: Sequence[str]) -> Found:
        body = identifier_body(users, self._fields)
        transient = rate_limited = 0
        while True:
            await self._pacer.acquire()
            self.counters.requests += 1
            answer = None
            try:
                answer = await self._client.post(body)
                if answer.status != 429:
                    self._pacer.on_response(answer.headers, time.time())
                verdict = classify(answer)
            except RateLimited as exc:
                rate_limited += 1
                self.counters.rate_limited += 1
                headers = answer.headers if answer is not None else None
                self._pacer.on_rate_limited(exc.wait_s, headers, time.time())
                if rate_limited > self._policy.max_rate_limit_waits:
                    message = f"export still rate limited after {rate_limited} waits"
                    raise AbortError(message) from None
                continue
            except TransientError as exc:
                self._pacer.on_no_answer()
                transient += 1
                if transient >= self._policy.attempts:
                    raise AbortError(f"export gave up after {transient} attempts: {exc}") from None
                self.counters.retries += 1
                await self._sleep(backoff_s(self._policy, transient, self._rng))
                continue
            if answer.status >= 300:
                message = getattr(verdict, "message", "")
                raise AbortError(
                    f"Braze refused the export request (HTTP {answer.status}: {message})"
                )
            try:
                payload = orjson.loads(answer.body)
            except orjson.JSONDecodeError:
                raise AbortError("the export answer is not JSON") from None
            return matched(users, payload)


class ExportRounds:
    """Asks the export for users, in rounds (each on its own event loop, between them the
    caller's settle delay); counts requests and time over all rounds."""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        rate_per_minute: int,
        fields: Sequence[str],
        policy: RetryPolicy,
    ) -> None:
        self._endpoint, self._key, self._rate = endpoint, api_key, rate_per_minute
        self._fields, self._policy = fields, policy
        self.counters = AskCounters()
        self.seconds = 0.0

    def ask(self, users: Sequence[str], reporter: VerifyReporter | None) -> Found:
        started = time.monotonic()
        try:
            return asyncio.run(self._ask(users, reporter))
        finally:
            self.seconds += time.monotonic() - started

    async def _ask(self, users: Sequence[str], reporter: VerifyReporter | None) -> Found:
        client = BrazeClient(
            self._endpoint,
            self._key,
            concurrency=_CONCURRENCY,
            timeout_s=self._policy.request_timeout_s,
            path=EXPORT_PATH,
        )
        done = 0

        def on_done(count: int) -> None:
            nonlocal done
            done += count
            if reporter is not None:
                reporter.progress("asking", done, len(users))

        async with client:
            asker = ProfileAsker(client, Pacer(self._rate), self._policy, self._fields)
            try:
                return await asker.ask_all(users, _CONCURRENCY, on_done)
            finally:
                for name in ("requests", "retries", "rate_limited"):
                    total = getattr(self.counters, name) + getattr(asker.counters, name)
                    setattr(self.counters, name, total)
