"""UserOrder: a claim waits for exactly the in-flight claims that last set one of its users, in
any order of releases; nothing is left behind once every claim is released."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.models import Batch
from importer.send.user_order import UserOrder

USERS = st.frozensets(st.sampled_from("abcdefgh"), max_size=5)
# Each step: claim a batch with these users, or release the n-th claim still in flight.
STEPS = st.lists(st.one_of(USERS, st.integers(min_value=0, max_value=20)), max_size=40)


def batch(users: frozenset[str]) -> Batch:
    return Batch(0, refs=(), records=(), users=(), body=b"", owners={}, attribute_users=users)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_claims_wait_for_the_last_in_flight_claim_of_each_user(steps: list[object]) -> None:
    async def scenario() -> None:
        order = UserOrder()
        in_flight: list[tuple[Batch, asyncio.Future[None]]] = []
        last_claim: dict[str, asyncio.Future[None]] = {}  # the model
        for step in steps:
            if isinstance(step, frozenset):
                claimed = batch(step)
                expected = {last_claim[u] for u in step if u in last_claim}
                earlier, mine = order.claim(claimed)
                assert set(earlier) == expected and len(earlier) == len(expected)
                last_claim.update(dict.fromkeys(step, mine))
                in_flight.append((claimed, mine))
            elif in_flight:
                released, future = in_flight.pop(int(str(step)) % len(in_flight))
                order.release(released, future)
                assert future.done()
                for user in [u for u, f in last_claim.items() if f is future]:
                    del last_claim[user]
        for released, future in in_flight:
            order.release(released, future)
        assert len(order) == 0

    asyncio.run(scenario())


def test_a_user_in_two_batches_makes_the_second_wait_for_the_first() -> None:
    async def scenario() -> None:
        order = UserOrder()
        _, first = order.claim(batch(frozenset("ab")))
        earlier, second = order.claim(batch(frozenset("bc")))
        assert earlier == [first]
        order.release(batch(frozenset("ab")), first)
        earlier, _ = order.claim(batch(frozenset("ab")))
        assert earlier == [second]  # b is still the second batch's; a was released

    asyncio.run(scenario())
