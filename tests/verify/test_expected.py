"""What a profile should hold after a run, and the sample of users (importer.verify.expected)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.models import Item, RowRef
from importer.verify.expected import Sample


def _item(user: str, line: int = 1, **arrays: tuple[dict[str, object], ...]) -> Item:
    return Item(RowRef("s.csv", line), {}, user, **arrays)


def _attrs(user: str, line: int, **values: object) -> Item:
    return _item(f"external_id:{user}", line, attributes=({"external_id": user, **values},))


def test_the_last_delivered_value_wins_and_null_means_unset() -> None:
    sample = Sample(None, seed=0)
    sample.feed(_attrs("u1", 2, plan="gold", tags=["a", "a", "b"], city="Rome"))
    sample.feed(_attrs("u1", 3, plan="silver", city=None, _update_existing_only=False))
    [user] = sample.chosen()
    assert user.attributes == {"plan": "silver", "tags": ["a", "b"], "city": None}


def test_operations_leave_only_their_kind_until_a_value_is_set_again() -> None:
    sample = Sample(None, seed=0)
    sample.feed(_attrs("u1", 2, visits=3, tags={"add": ["x"]}))
    sample.feed(_attrs("u1", 3, visits={"inc": 1}))
    [user] = sample.chosen()
    assert user.attributes == {} and user.operations == {"visits": "inc", "tags": "array"}
    sample.feed(_attrs("u1", 4, visits=10))
    assert user.attributes == {"visits": 10} and user.operations == {"tags": "array"}


def test_events_and_purchases_are_counted_with_their_first_and_last_time() -> None:
    sample = Sample(None, seed=0)
    events = tuple(
        {"external_id": "u1", "name": "visit", "time": t}
        for t in ("2024-05-02T00:00:00Z", "2024-05-01T02:00:00+02:00", "2024-05-03T00:00:00Z")
    )
    purchase = {"external_id": "u1", "product_id": "sku", "time": "2024-05-01", "quantity": 3}
    sample.feed(_item("external_id:u1", events=events, purchases=(purchase,)))
    [user] = sample.chosen()
    count, first, last = user.events["visit"]
    assert (count, last - first) == (3, 2 * 86_400)  # an offset is an instant
    assert user.purchases["sku"][0] == 1  # one object: at least one purchase, whatever quantity


def test_users_identified_otherwise_are_counted_not_sampled() -> None:
    sample = Sample(None, seed=0)
    sample.feed(_item("email:a@b.c", attributes=({"email": "a@b.c", "plan": "x"},)))
    sample.feed(_item("user_alias:crm:7", attributes=({"plan": "x"},)))
    assert (sample.rows, sample.other_identifier_rows) == (2, 1)
    assert [u.user for u in sample.chosen()] == ["user_alias:crm:7"]


def test_an_ambiguous_row_makes_its_user_uncertain_without_its_values() -> None:
    sample = Sample(None, seed=0)
    sample.feed(_attrs("u1", 2, plan="gold"))
    sample.feed(_attrs("u1", 3, plan="silver"), uncertain=True)
    [user] = sample.chosen()
    assert user.uncertain and user.attributes == {"plan": "gold"}


def _bottom(users: list[str], size: int, seed: int) -> set[str]:
    key = seed.to_bytes(8, "big", signed=True)
    rank = {u: hashlib.blake2b(u.encode(), key=key, digest_size=8).digest() for u in set(users)}
    return set(sorted(rank, key=rank.__getitem__)[:size])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=200),
    st.integers(0, 20),
    st.integers(-5, 5),
)
def test_a_sample_is_the_users_of_smallest_keyed_hash_and_holds_all_their_rows(
    rows: list[int], size: int, seed: int
) -> None:
    users = [f"external_id:u{n}" for n in rows]
    sample = Sample(size, seed)
    for line, user in enumerate(users, start=2):
        sample.feed(_item(user, line, attributes=({"line": line},)))
    chosen = {u.user: u for u in sample.chosen()}
    assert set(chosen) == _bottom(users, size, seed)
    for user, expected in chosen.items():  # every row of a sampled user was absorbed
        last = max(n for n, u in enumerate(users, start=2) if u == user)
        assert expected.attributes == {"line": last}


def test_another_seed_picks_other_users() -> None:
    users = [f"external_id:u{n}" for n in range(1_000)]
    picks = []
    for seed in (1, 2):
        sample = Sample(50, seed)
        for user in users:
            sample.feed(_item(user, attributes=({"a": 1},)))
        picks.append({u.user for u in sample.chosen()})
    assert len(picks[0]) == len(picks[1]) == 50 and picks[0] != picks[1]
