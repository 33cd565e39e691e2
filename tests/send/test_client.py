"""The status table: one answer in, one decision out."""

from __future__ import annotations

import time

import orjson
import pytest

from importer.errors import AbortError, RateLimited, TransientError
from importer.send.client import (
    Accepted,
    Answer,
    Refused,
    RefusedObject,
    TooLarge,
    classify,
    rate_limit_wait,
)


def _answer(status: int, body: object, **headers: str) -> Answer:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Answer(status=status, headers=headers, body=raw, latency_s=0.01)


def test_2xx_is_accepted_with_object_errors_mapped() -> None:
    body = {
        "message": "success",
        "errors": [
            {"type": "'quantity' is not valid", "input_array": "purchases", "index": 1},
            {"type": "junk"},
        ],
    }
    assert classify(_answer(201, body)) == Accepted(
        (RefusedObject("purchases", 1, "'quantity' is not valid"),)
    )
    assert classify(_answer(200, {"message": "success"})) == Accepted(())


def test_429_waits_what_the_server_says() -> None:
    with pytest.raises(RateLimited) as caught:
        classify(_answer(429, {"message": "x"}, **{"x-ratelimit-retry-after": "7"}))
    assert caught.value.wait_s == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(status: int) -> None:
    with pytest.raises(TransientError):
        classify(_answer(status, b"<html>oops</html>"))


def test_413_and_max_input_length_mean_split() -> None:
    assert isinstance(classify(_answer(413, b"too big")), TooLarge)
    assert isinstance(classify(_answer(400, {"message": "Max Input Length Exceeded"})), TooLarge)


def test_other_400_is_refused_with_its_errors() -> None:
    body = {
        "message": "Valid data must be provided in the 'attributes', 'events', "
        "or 'purchases' fields.",
        "errors": [{"type": "bad", "input_array": "events", "index": 0}],
    }
    outcome = classify(_answer(400, body))
    assert isinstance(outcome, Refused)
    assert outcome.errors == (RefusedObject("events", 0, "bad"),)
    assert isinstance(classify(_answer(400, b"not json")), Refused)


@pytest.mark.parametrize("status", [401, 403, 404, 415])
def test_auth_and_other_4xx_abort(status: int) -> None:
    with pytest.raises(AbortError):
        classify(_answer(status, {"message": "Invalid API Key"}))


def test_reset_header_in_both_forms() -> None:
    now = time.time()
    assert rate_limit_wait({"x-ratelimit-reset": "12"}, now) == 12.0
    assert rate_limit_wait({"x-ratelimit-reset": str(int(now) + 30)}, now) == pytest.approx(
        30, abs=1
    )
    assert rate_limit_wait({"x-ratelimit-reset": str(int(now) - 5)}, now) == 0.0
    assert rate_limit_wait({"x-ratelimit-retry-after": "3", "x-ratelimit-reset": "60"}, now) == 3
    assert rate_limit_wait({}, now) is None
    assert rate_limit_wait({"x-ratelimit-reset": "soon"}, now) is None
