"""The HTTP side of the sandbox: routing, auth, rate limit, faults, latency, drops.

Order of checks for one request: path and method (404), API key (401/403), rate limit (429),
injected 429/500/503, content type (415), body size (413), then the body itself (see track.py;
export.py for ``POST /users/export/ids``, which has a rate limit of its own and is never
dropped or slowed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
from aiohttp import web

from importer.config import MAX_BODY_BYTES, BatchLimits
from importer.models import ARRAYS, BrazeObject
from importer.rules import EXPORT_PATH
from importer.sandbox.export import Exporter
from importer.sandbox.faults import FaultPlan, Faults
from importer.sandbox.profiles import Profiles
from importer.sandbox.ratelimit import RETRY_AFTER, Headers, RateLimiter
from importer.sandbox.record import Recorder
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.stats import StatsBook
from importer.sandbox.track import TrackResult, process_body

TRACK_PATH = "/users/track"
_FAULT_MESSAGES = {500: "Internal Server Error", 503: "Service Unavailable"}


def _json(status: int, payload: dict[str, Any], headers: Headers | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


class TrackApp:
    """Handles every request of one sandbox (a catch-all route points here)."""

    def __init__(
        self, settings: SandboxSettings, stats: StatsBook, recorder: Recorder | None
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._recorder = recorder
        self._limits = BatchLimits.for_mode(settings.batch_mode)
        self._limiter = RateLimiter(settings)
        export_limits = dataclasses.replace(
            settings,
            limit_per_minute=settings.export_limit_per_minute,
            limit_per_3s=None,
            limit_per_hour=None,
        )
        self._export_limiter = RateLimiter(export_limits)
        self.profiles = Profiles()
        self.exporter = Exporter(settings, self.profiles)
        self._faults = Faults(settings)
        self._latency_s = settings.latency_ms / 1000
        self._slow_s = settings.slow_ms / 1000
        self.accepted: dict[str, list[BrazeObject]] = {name: [] for name in ARRAYS}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        number = self._stats.begin()
        status: int | None = None
        held: tuple[str, ...] = ()
        try:
            plan = self._faults.draw()
            if request.path == EXPORT_PATH and request.method == "POST":
                reply = await self._export(request, plan)
                status = reply.status
                await asyncio.sleep(self._latency_s)
                return reply
            reply, result = await self._answer(request, plan)
            if result is not None:
                held = self._stats.hold_users(number, result.users)
                if not plan.drop or plan.apply_before_drop:
                    self._apply(result)
            await self._wait(plan)
            if result is not None and plan.drop:
                return self._drop(request, plan)
            status = reply.status
            if status == 429:
                # Counted when the client gets it: its wait starts then.
                wait = float(reply.headers.get(RETRY_AFTER, "0"))
                self._stats.asked_to_wait(time.monotonic(), wait)
            return reply
        finally:
            self._stats.release_users(number, held)
            self._stats.end(status)

    async def _answer(
        self, request: web.Request, plan: FaultPlan
    ) -> tuple[web.Response, TrackResult | None]:
        if request.method != "POST" or request.path != TRACK_PATH:
            return _json(404, {"message": "Not Found"}), None
        denied = self._authorize(request.headers.get("Authorization", ""))
        if denied is not None:
            return denied, None
        allowed, headers = self._limiter.admit()
        if not allowed:
            return _json(429, {"message": "API rate limit exceeded"}, headers), None
        if plan.status is not None:
            return self._injected(plan.status, headers), None
        if request.content_type != "application/json":
            return _json(415, {"message": "Unsupported Media Type"}, headers), None
        raw = await self._read_body(request)
        if raw is None:
            return _json(413, {"message": "Request Entity Too Large"}, headers), None
        settings = self._settings
        result = process_body(
            raw, self._limits, settings.blocked_external_ids, settings.poisoned_external_ids
        )
        self._stats.rejected_objects += result.rejected
        reply = _json(result.status, result.payload, headers)
        return reply, (result if result.status == 201 else None)

    async def _export(self, request: web.Request, plan: FaultPlan) -> web.Response:
        denied = self._authorize(request.headers.get("Authorization", ""))
        if denied is not None:
            return denied
        allowed, headers = self._export_limiter.admit()
        if not allowed:
            return _json(429, {"message": "API rate limit exceeded"}, headers)
        if plan.status is not None:
            return self._injected(plan.status, headers)
        if request.content_type != "application/json":
            return _json(415, {"message": "Unsupported Media Type"}, headers)
        raw = await self._read_body(request)
        if raw is None:
            return _json(413, {"message": "Request Entity Too Large"}, headers)
        result = self.exporter.answer(raw)
        return _json(result.status, result.payload, headers)

    def _authorize(self, authorization: str) -> web.Response | None:
        key = authorization[7:] if authorization.startswith("Bearer ") else None
        if key == self._settings.api_key:
            return None
        if key is not None and key in self._settings.forbidden_api_keys:
            return _json(403, {"message": "Access Denied"})
        # Like Braze at times, echo what was presented: the importer must redact it
        # (docs/braze.md, Answers and what they mean).
        presented = key if key is not None else authorization
        message = f"Invalid API Key: {presented}" if presented else "Invalid API Key"
        return _json(401, {"message": message})

    def _injected(self, status: int, headers: Headers) -> web.Response:
        self._stats.fault(str(status))
        if status == 429:
            return _json(429, {"message": "API rate limit exceeded"}, {RETRY_AFTER: "1"})
        return _json(status, {"message": _FAULT_MESSAGES[status]}, headers)

    async def _read_body(self, request: web.Request) -> bytes | None:
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return None
        try:
            raw = await request.read()  # the app's client_max_size stops a chunked giant body
        except web.HTTPRequestEntityTooLarge:
            return None
        return raw if len(raw) <= MAX_BODY_BYTES else None

    def _apply(self, result: TrackResult) -> None:
        for array, objects in result.accepted.items():
            if not objects:
                continue
            self._stats.accepted[array] += len(objects)
            if self._recorder is not None:
                self._recorder.write(array, objects)
            if self._settings.keep_in_memory:
                self.accepted[array].extend(objects)
            if self._settings.profiles:
                for obj in objects:
                    self.profiles.apply(array, obj)

    async def _wait(self, plan: FaultPlan) -> None:
        delay = self._latency_s
        if plan.slow:
            self._stats.fault("slow")
            delay += self._slow_s
        if delay > 0:
            await asyncio.sleep(delay)

    def _drop(self, request: web.Request, plan: FaultPlan) -> web.StreamResponse:
        self._stats.fault("drop")
        if plan.apply_before_drop:
            self._stats.fault("drop_applied")
        if request.transport is not None:
            request.transport.close()
        # aiohttp cannot write this to the closed transport; it just notes the client is gone.
        return web.Response(status=500)
