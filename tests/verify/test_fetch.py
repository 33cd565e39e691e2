"""Asking the sandbox's export over a socket: 50 per request, retries, 429s, matching."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from importer.config import RetryPolicy
from importer.errors import AbortError
from importer.rules import EXPORT_PATH
from importer.sandbox import Sandbox
from importer.send import BrazeClient, Pacer
from importer.verify.fetch import Found, ProfileAsker, identifier_body
from tests.sandbox.test_sandbox import MakeSandbox, attr, post
from tests.send.test_sender import FakeClock

FIELDS = ["external_id", "user_aliases", "custom_attributes"]


def _ask(
    sandbox: Sandbox, users: Sequence[str], key: str = "sandbox-key"
) -> tuple[Found, ProfileAsker]:
    async def go() -> tuple[Found, ProfileAsker]:
        virtual = FakeClock()  # the pacer's 429 pauses pass at once
        client = BrazeClient(sandbox.url, key, concurrency=4, timeout_s=10, path=EXPORT_PATH)
        async with client:
            asker = ProfileAsker(
                client,
                Pacer(0, clock=virtual, sleep=virtual.sleep),
                RetryPolicy(attempts=8, base_s=0.001, cap_s=0.002),
                FIELDS,
                rng=random.Random(1),
            )
            return await asker.ask_all(users, 4), asker

    return asyncio.run(go())


def test_identifier_body_splits_external_ids_and_aliases() -> None:
    body = identifier_body(["external_id:a:b", "user_alias:crm:n:1"], ["external_id"])
    assert body == (
        b'{"fields_to_export":["external_id"],"external_ids":["a:b"],'
        b'"user_aliases":[{"alias_name":"n:1","alias_label":"crm"}]}'
    )


def test_every_user_is_asked_through_5xx_and_429s(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True, p_500=0.2, p_503=0.1, p_429=0.2, seed=8)
    users = [f"u{n}" for n in range(120)]
    while post(sandbox, {"attributes": [attr(u, n=1) for u in users[:75]]}).status != 201:
        pass  # the dice also hit /users/track
    while post(sandbox, {"attributes": [attr(u, n=1) for u in users[75:]]}).status != 201:
        pass
    alias = {"alias_name": "a1", "alias_label": "crm"}
    while (
        post(
            sandbox, {"attributes": [{"user_alias": alias, "_update_existing_only": False, "n": 2}]}
        ).status
        != 201
    ):
        pass
    keys = [f"external_id:{u}" for u in users] + ["external_id:ghost", "user_alias:crm:a1"]
    found, asker = _ask(sandbox, keys)
    assert found["external_id:ghost"] is None
    assert found["user_alias:crm:a1"] == {"user_aliases": [alias], "custom_attributes": {"n": 2}}
    assert all(
        found[f"external_id:{u}"] == {"external_id": u, "custom_attributes": {"n": 1}}
        for u in users
    )
    counters = asker.counters
    assert counters.retries > 0 and counters.rate_limited > 0
    # 122 users: 3 requests of at most 50, plus one per retry and per 429.
    assert counters.requests == 3 + counters.retries + counters.rate_limited


def test_a_refused_key_aborts(sandbox: Sandbox) -> None:
    with pytest.raises(AbortError, match="401"):
        _ask(sandbox, ["external_id:u1"], key="not-the-key")
