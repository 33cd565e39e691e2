"""The sandbox over real sockets on 127.0.0.1: every answer, its headers, faults and records."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from importer.errors import ConfigError
from importer.sandbox import Sandbox, SandboxSettings, start_sandbox
from importer.sandbox.ratelimit import RateLimiter
from importer.sandbox.stats import StatsBook
from importer.sandbox.track import MAX_INPUT, NO_VALID_DATA, PARSE_ERROR

MakeSandbox = Callable[..., Sandbox]
TIME = "2024-03-01T10:00:00Z"
FOUR_MB = 4 * 1024 * 1024


def attr(user: str, **fields: Any) -> dict[str, Any]:
    return {"external_id": user, **fields}


def event(user: str, name: str = "signup") -> dict[str, Any]:
    return {"external_id": user, "name": name, "time": TIME}


def purchase(user: str, quantity: int = 1) -> dict[str, Any]:
    return {
        "external_id": user,
        "product_id": "sku",
        "currency": "EUR",
        "price": 5.0,
        "quantity": quantity,
        "time": TIME,
    }


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: Any


def post(
    target: Sandbox | str,
    body: bytes | dict[str, Any],
    *,
    key: str | None = "sandbox-key",
    content_type: str | None = "application/json",
    path: str = "/users/track",
    method: str = "POST",
) -> Answer:
    url = urlsplit(target if isinstance(target, str) else target.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return Answer(response.status, response.headers, orjson.loads(raw) if raw else None)
    finally:
        conn.close()


def post_together(sandbox: Sandbox, bodies: list[dict[str, Any]]) -> list[Answer]:
    """Send the bodies at the same moment, one thread each."""
    barrier = threading.Barrier(len(bodies))
    answers: list[Answer | None] = [None] * len(bodies)

    def send(index: int) -> None:
        barrier.wait()
        answers[index] = post(sandbox, bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


# --- the body: success, errors[], counts -------------------------------------------------------


def test_success_counts_only_the_arrays_present(sandbox: Sandbox) -> None:
    answer = post(sandbox, {"attributes": [attr("u1", a=1)], "events": [event("u1")] * 2})
    assert answer.status == 201
    assert answer.body == {"message": "success", "attributes_processed": 1, "events_processed": 2}
    assert sandbox.accepted("events") == [event("u1")] * 2


def test_attributes_are_counted_per_distinct_user(sandbox: Sandbox) -> None:
    body = {"attributes": [attr("u1", a=1), attr("u1", b=2), attr("u2")], "purchases": []}
    answer = post(sandbox, body)
    assert answer.status == 201
    assert answer.body == {
        "message": "success",
        "attributes_processed": 2,
        "purchases_processed": 0,
    }
    assert sandbox.stats.accepted["attributes"] == 3


def test_errors_are_indexed_within_their_array(sandbox: Sandbox) -> None:
    body = {
        "attributes": [attr("u1"), {"first_name": "no id"}, attr("u3")],
        "events": [event("u1"), {"external_id": "u1", "time": TIME}],
        "purchases": [purchase("u1", quantity=0), purchase("u2")],
    }
    answer = post(sandbox, body)
    assert answer.status == 201
    assert answer.body["attributes_processed"] == 2
    assert answer.body["events_processed"] == 1
    assert answer.body["purchases_processed"] == 1
    located = [(e["input_array"], e["index"]) for e in answer.body["errors"]]
    assert located == [("attributes", 1), ("events", 1), ("purchases", 0)]
    assert "quantity" in answer.body["errors"][2]["type"]
    assert sandbox.accepted("purchases") == [purchase("u2")]
    assert sandbox.stats.rejected_objects == 3


def test_every_object_invalid_is_a_400_with_errors(sandbox: Sandbox) -> None:
    answer = post(sandbox, {"events": [{"name": "x"}], "attributes": [attr("u", nick="n" * 256)]})
    assert answer.status == 400
    assert answer.body["message"] == NO_VALID_DATA
    assert [(e["input_array"], e["index"]) for e in answer.body["errors"]] == [
        ("attributes", 0),
        ("events", 0),
    ]
    assert sandbox.stats.accepted == {"attributes": 0, "events": 0, "purchases": 0}


def test_no_objects_at_all_is_a_400(sandbox: Sandbox) -> None:
    answer = post(sandbox, {"partner": "tolerated"})
    assert (answer.status, answer.body) == (400, {"message": NO_VALID_DATA})


def test_blocked_external_id_is_refused_inside_a_201(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(blocked_external_ids=frozenset({"dummy"}))
    answer = post(sandbox, {"events": [event("dummy"), event("real")]})
    assert answer.status == 201
    assert answer.body["errors"] == [
        {
            "type": "provided external_id is blacklisted and disallowed",
            "input_array": "events",
            "index": 0,
        }
    ]
    assert sandbox.accepted("events") == [event("real")]


# --- refusals: path, auth, content type, size, syntax, object limits -----------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users/track"), ("POST", "/users/track/"), ("POST", "/users/trackx"), ("POST", "/")],
)
def test_anything_but_post_users_track_is_404(sandbox: Sandbox, method: str, path: str) -> None:
    answer = post(sandbox, {"attributes": [attr("u")]}, method=method, path=path)
    assert answer.status == 404
    assert sandbox.stats.accepted["attributes"] == 0


def test_missing_key_is_401(sandbox: Sandbox) -> None:
    answer = post(sandbox, {"attributes": [attr("u")]}, key=None)
    assert (answer.status, answer.body) == (401, {"message": "Invalid API Key"})


def test_wrong_key_is_401_and_echoed_like_braze_does(sandbox: Sandbox) -> None:
    answer = post(sandbox, {"attributes": [attr("u")]}, key="secret-123")
    assert answer.status == 401
    assert answer.body == {"message": "Invalid API Key: secret-123"}
    assert "x-ratelimit-limit" not in answer.headers


def test_key_without_permission_is_403(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(forbidden_api_keys=frozenset({"read-only"}))
    assert post(sandbox, {"attributes": [attr("u")]}, key="read-only").status == 403


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415(sandbox: Sandbox, content_type: str | None) -> None:
    assert post(sandbox, {"attributes": [attr("u")]}, content_type=content_type).status == 415


def test_json_with_charset_is_accepted(sandbox: Sandbox) -> None:
    body = {"attributes": [attr("u")]}
    assert post(sandbox, body, content_type="application/json; charset=utf-8").status == 201


def test_body_over_4_mb_is_413_and_exactly_4_mb_is_fine(sandbox: Sandbox) -> None:
    assert post(sandbox, b"{" + b" " * FOUR_MB + b"}").status == 413
    body = orjson.dumps({"attributes": [attr("u")]})
    assert post(sandbox, body + b" " * (FOUR_MB - len(body))).status == 201


@pytest.mark.parametrize(
    "raw", [b'{"attributes": [}', b"[1, 2]", b'{"attributes": {"external_id": "u"}}', b""]
)
def test_unparseable_body_is_400(sandbox: Sandbox, raw: bytes) -> None:
    answer = post(sandbox, raw)
    assert (answer.status, answer.body) == (400, {"message": PARSE_ERROR})


@pytest.mark.parametrize(
    ("mode", "fits", "too_many"),
    [
        ("combined", {"attributes": 40, "events": 35}, {"attributes": 40, "events": 36}),
        ("legacy", {"attributes": 75, "events": 75, "purchases": 75}, {"attributes": 76}),
        ("mau50", {"attributes": 25, "purchases": 25}, {"attributes": 25, "purchases": 26}),
    ],
)
def test_object_limits_of_each_batch_mode(
    make_sandbox: MakeSandbox, mode: str, fits: dict[str, int], too_many: dict[str, int]
) -> None:
    sandbox = make_sandbox(batch_mode=mode)
    build: dict[str, Callable[[str], dict[str, Any]]] = {
        "attributes": attr,
        "events": event,
        "purchases": purchase,
    }

    def body(counts: dict[str, int]) -> dict[str, Any]:
        return {name: [build[name](f"u{i}") for i in range(n)] for name, n in counts.items()}

    assert post(sandbox, body(fits)).status == 201
    answer = post(sandbox, body(too_many))
    assert (answer.status, answer.body) == (400, {"message": MAX_INPUT})


# --- rate limits -------------------------------------------------------------------------------


def test_answers_carry_lower_case_rate_limit_headers(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(limit_per_minute=1000, limit_per_hour=5000)
    answer = post(sandbox, {"attributes": [attr("u")]})
    names = {name for name in answer.headers if name.startswith("x-ratelimit")}
    assert names == {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
    assert answer.headers["x-ratelimit-limit"] == "1000"  # the tighter window is reported
    assert answer.headers["x-ratelimit-remaining"] == "999"
    assert 1 <= int(answer.headers["x-ratelimit-reset"]) <= 60


def test_reset_header_as_epoch(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(limit_per_hour=10, reset_header="epoch")
    now = time.time()
    reset = int(post(sandbox, {"attributes": [attr("u")]}).headers["x-ratelimit-reset"])
    assert now < reset <= now + 3601
    assert reset % 3600 == 0  # the hourly window resets on the clock hour


def test_over_the_limit_is_429_with_retry_after_only(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(limit_per_hour=2)
    remaining = [post(sandbox, {"events": [event("u")]}).headers["x-ratelimit-remaining"]]
    remaining.append(post(sandbox, {"events": [event("u")]}).headers["x-ratelimit-remaining"])
    refused = post(sandbox, {"events": [event("u")]})
    assert remaining == ["1", "0"]
    assert refused.status == 429
    assert 1 <= int(refused.headers["X-Ratelimit-Retry-After"]) <= 3600
    assert not [name for name in refused.headers if name.lower().startswith("x-ratelimit-")
                and name.lower() != "x-ratelimit-retry-after"]  # fmt: skip
    assert sandbox.stats.rate_limited == 1
    assert sandbox.stats.accepted["events"] == 2


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_windows_are_fixed_and_aligned_on_the_clock() -> None:
    clock = FakeClock(3000.5)  # 0.5 s into a 3-second window (3000 = 1000 * 3)
    limiter = RateLimiter(SandboxSettings(limit_per_3s=2, limit_per_hour=100), clock)
    assert limiter.admit()[0] and limiter.admit()[0]
    allowed, headers = limiter.admit()
    assert not allowed and headers == {"X-Ratelimit-Retry-After": "3"}  # 2.5 s, rounded up
    clock.now = 3003.0  # the next 3-second window
    allowed, headers = limiter.admit()
    assert allowed
    assert headers["x-ratelimit-limit"] == "2" and headers["x-ratelimit-remaining"] == "1"
    assert headers["x-ratelimit-reset"] == "3"


def test_refused_requests_do_not_count() -> None:
    clock = FakeClock(7200.0)
    limiter = RateLimiter(SandboxSettings(limit_per_minute=1, limit_per_hour=3), clock)
    assert limiter.admit()[0]
    assert not limiter.admit()[0] and not limiter.admit()[0]
    clock.now += 60
    allowed, headers = limiter.admit()
    assert allowed and headers["x-ratelimit-limit"] == "1"
    clock.now += 60
    allowed, headers = limiter.admit()
    assert allowed and headers["x-ratelimit-limit"] == "3"  # now the hour is the tightest
    assert headers["x-ratelimit-remaining"] == "0"
    clock.now += 60
    allowed, headers = limiter.admit()
    assert not allowed and headers["X-Ratelimit-Retry-After"] == str(3600 - 180)


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_status_faults(make_sandbox: MakeSandbox, status: int) -> None:
    sandbox = make_sandbox(**{f"p_{status}": 1.0})
    answer = post(sandbox, {"events": [event("u")]})
    assert answer.status == status
    if status == 429:
        # Like Braze's: the wait only, no x-ratelimit-* (docs/braze.md, Rate-limit headers).
        assert answer.headers["X-Ratelimit-Retry-After"] == "1"
        assert [n for n in answer.headers if n.lower().startswith("x-ratelimit-")] == [
            "X-Ratelimit-Retry-After"
        ]
        assert sandbox.stats.wait_asked_s == pytest.approx(1.0)
    assert sandbox.stats.faults == {str(status): 1}
    assert sandbox.stats.accepted["events"] == 0


def test_the_waits_429s_ask_for_are_added_up_as_a_union() -> None:
    book = StatsBook()
    book.asked_to_wait(10.0, 1.0)
    book.asked_to_wait(10.4, 1.0)  # overlaps: only 0.4 s more
    book.asked_to_wait(10.5, 0.5)  # inside: nothing more
    book.asked_to_wait(20.0, 3.0)  # apart
    assert book.snapshot().wait_asked_s == pytest.approx(1.4 + 3.0)


def test_the_wait_of_a_limit_429_is_counted_too(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(limit_per_hour=1)
    post(sandbox, {"events": [event("u")]})
    refused = post(sandbox, {"events": [event("u")]})
    assert sandbox.stats.wait_asked_s == pytest.approx(
        float(refused.headers["X-Ratelimit-Retry-After"])
    )


def test_faults_follow_the_seed(make_sandbox: MakeSandbox) -> None:
    def statuses(sandbox: Sandbox) -> list[int]:
        return [post(sandbox, {"events": [event("u")]}).status for _ in range(30)]

    first = statuses(make_sandbox(p_500=0.3, p_503=0.2, seed=7))
    assert first == statuses(make_sandbox(p_500=0.3, p_503=0.2, seed=7))
    assert {201, 500, 503} == set(first)


@pytest.mark.parametrize("applied", [True, False])
def test_drop_closes_the_connection_without_answering(
    make_sandbox: MakeSandbox, tmp_path: Path, applied: bool
) -> None:
    sandbox = make_sandbox(p_drop=1.0, p_drop_after_apply=float(applied), record_dir=tmp_path)
    with pytest.raises(http.client.RemoteDisconnected):
        post(sandbox, {"events": [event("u")]})
    assert sandbox.accepted("events") == ([event("u")] if applied else [])
    assert (tmp_path / "events.jsonl").exists() == applied
    expected = {"drop": 1, "drop_applied": 1} if applied else {"drop": 1}
    assert sandbox.stats.faults == expected
    assert sandbox.stats.statuses == {}


def test_drop_is_a_disconnect_for_an_aiohttp_client() -> None:
    async def scenario() -> None:
        sandbox = await start_sandbox(SandboxSettings(p_drop=1.0, p_drop_after_apply=1.0))
        try:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ServerDisconnectedError):
                    await session.post(
                        f"{sandbox.url}/users/track",
                        json={"events": [event("u")]},
                        headers={"Authorization": "Bearer sandbox-key"},
                    )
            assert sandbox.stats.accepted["events"] == 1
        finally:
            await sandbox.close()

    asyncio.run(scenario())


def test_latency_delays_every_answer(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(latency_ms=150)
    for body, status in (({"events": [event("u")]}, 201), (b"{", 400)):
        started = time.perf_counter()
        assert post(sandbox, body).status == status
        assert time.perf_counter() - started >= 0.15


def test_slow_answers(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(p_slow=1.0, slow_ms=120)
    started = time.perf_counter()
    assert post(sandbox, {"events": [event("u")]}).status == 201
    assert time.perf_counter() - started >= 0.12
    assert sandbox.stats.faults == {"slow": 1}


# --- record and memory -------------------------------------------------------------------------


def test_record_appends_accepted_objects_as_private_json_lines(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    sandbox = make_sandbox(record_dir=record)
    post(sandbox, {"attributes": [attr("u1", a=1), {"bad": 1}], "events": [event("u1")]})
    post(sandbox, {"attributes": [attr("u2", city="Zürich")]})
    # Readable while the server still runs: written through at each request.
    lines = (record / "attributes.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [attr("u1", a=1), attr("u2", city="Zürich")]
    assert [orjson.loads(x) for x in (record / "events.jsonl").read_bytes().splitlines()] == [
        event("u1")
    ]
    assert not (record / "purchases.jsonl").exists()
    for name in ("attributes.jsonl", "events.jsonl"):
        assert stat.S_IMODE(os.stat(record / name).st_mode) == 0o600


def test_memory_can_be_switched_off(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(keep_in_memory=False)
    assert post(sandbox, {"events": [event("u")]}).status == 201
    assert sandbox.accepted("events") == []
    assert sandbox.stats.accepted["events"] == 1


# --- concurrency and per-user order ------------------------------------------------------------


def test_same_user_attributes_in_flight_twice_are_counted(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(latency_ms=300)
    bodies = [{"attributes": [attr("u1", n=i), attr(f"other{i}")]} for i in range(2)]
    assert [a.status for a in post_together(sandbox, bodies)] == [201, 201]
    stats = sandbox.stats
    assert stats.user_overlaps == 1
    assert len(stats.overlap_examples) == 1 and "external_id:u1 in #" in stats.overlap_examples[0]
    assert stats.max_concurrent == 2


@pytest.mark.parametrize(
    "bodies",
    [
        [{"attributes": [attr("u1")]}, {"attributes": [attr("u2")]}],  # different users
        [{"events": [event("u1")]}, {"events": [event("u1")]}],  # events need no order
        [{"attributes": [attr("u1"), attr("u1", b=2)]}],  # twice in one request is fine
    ],
)
def test_no_overlap_is_reported_when_there_is_none(
    make_sandbox: MakeSandbox, bodies: list[dict[str, Any]]
) -> None:
    sandbox = make_sandbox(latency_ms=200)
    post_together(sandbox, bodies)
    assert sandbox.stats.user_overlaps == 0
    assert sandbox.stats.max_concurrent == len(bodies)


def test_sequential_requests_for_one_user_do_not_overlap(sandbox: Sandbox) -> None:
    for i in range(3):
        post(sandbox, {"attributes": [attr("u1", n=i)]})
    assert sandbox.stats.user_overlaps == 0
    assert [obj["n"] for obj in sandbox.accepted("attributes")] == [0, 1, 2]


def test_max_concurrent_requests(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(latency_ms=300)
    post_together(sandbox, [{"events": [event(f"u{i}")]} for i in range(4)])
    assert sandbox.stats.max_concurrent == 4
    assert sandbox.stats.in_flight == 0
    assert sandbox.stats.requests == 4


# --- settings and serving ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"p_500": 1.5}, {"p_429": 0.6, "p_503": 0.6}, {"latency_ms": -1}, {"limit_per_minute": 0}],
)
def test_bad_settings_are_config_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SandboxSettings(**overrides)


def test_a_busy_port_is_a_config_error(sandbox: Sandbox, make_sandbox: MakeSandbox) -> None:
    port = urlsplit(sandbox.url).port
    with pytest.raises(ConfigError, match="cannot listen"):
        make_sandbox(port=port)


def test_serve_forever_prints_its_url_and_stops_cleanly_on_sigterm() -> None:
    program = (
        "from importer.sandbox import SandboxSettings, serve_forever\n"
        "serve_forever(SandboxSettings(api_key='k'), lambda url: print(url, flush=True),\n"
        "              lambda stats: print('requests', stats.requests))\n"
        "print('stopped', flush=True)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert post(url, {"events": [event("u")]}, key="k").status == 201
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert server.stdout.read().split("\n")[:2] == ["requests 1", "stopped"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
