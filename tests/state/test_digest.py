"""The digests a state file holds must not change: yesterday's file is compared with today's."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import orjson
import pytest

from importer.state.digest import (
    OPERATION,
    UNSET,
    event_fingerprint,
    operation_digest,
    purchase_fingerprint,
    value_digest,
    whole_digest,
)
from importer.state.row_digests import object_digests, value_digests


def _stored(data: Any) -> bytes:
    """What every state file so far holds: 8 bytes of BLAKE2b over canonical JSON."""
    return blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()


@pytest.mark.parametrize(
    "value", ["Hamburg", "", 42, 2.5, True, ["a", "b"], {"b": 1, "a": [2, {"d": 3, "c": 4}]}]
)
def test_a_value_digest_is_blake2b_8_of_its_canonical_json(value: Any) -> None:
    assert value_digest(value) == _stored(value)


def test_digests_are_the_ones_files_already_hold() -> None:
    # Literal bytes, computed once: a change of hash or encoding fails here, not at a customer.
    assert value_digest("Hamburg").hex() == _stored("Hamburg").hex() == "54b07683ac7cdc29"
    assert value_digest(None) == UNSET
    obj = {"external_id": "u1", "city": "Hamburg"}
    assert whole_digest(obj) == _stored(obj)
    event = {"external_id": "u1", "name": "bought", "time": "2026-01-01T00:00:00Z"}
    assert event_fingerprint(event) == _stored(("e", "bought", "2026-01-01T00:00:00Z", {}))
    purchase = {"product_id": "p", "time": "t", "price": 1.5, "currency": "EUR"}
    assert purchase_fingerprint(purchase) == _stored(("p", "p", "t", {}, 1.5, "EUR", 1))
    assert operation_digest("kK1", "points", {"inc": 1}) == OPERATION + _stored(
        ("o", "kK1", "points", ["inc"])
    )


def test_digests_made_one_after_another_do_not_share_state() -> None:
    assert [value_digest(v) for v in ("a", "b", "a")] == [_stored("a"), _stored("b"), _stored("a")]


def test_an_objects_value_digests_are_each_values_digest_but_identifier_and_flags() -> None:
    obj = {
        "external_id": "u1",
        "_update_existing_only": False,
        "city": "Hamburg",
        "gone": None,
        "points": {"inc": 1},
        "prefs": {"b": 1, "a": 2},
        "big": 2**70,
        "tags": ["x"],
    }
    assert object_digests(obj) == (
        "xu1",
        whole_digest(obj),
        6,
        {
            name: value_digest(obj[name])
            for name in ("city", "gone", "points", "prefs", "big", "tags")
        },
    )
    assert value_digests(obj, "xu1")["points"] is None  # an operator: never compared
    assert value_digests(obj, "xu1")["big"] is None  # no canonical JSON: always sent
    assert value_digests(obj, "xu1")["gone"] == UNSET
