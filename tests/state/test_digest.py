"""The digests a state file holds must not change: yesterday's file is compared with today's (the
whole digest, only a shortcut, may: a file from before costs one night of comparisons)."""

from __future__ import annotations

import sqlite3
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.send import attributes_json
from importer.state import row_digests
from importer.state.delivery import DeliveryState, Filtered
from importer.state.digest import (
    OPERATION,
    UNSET,
    event_fingerprint,
    operation_digest,
    purchase_fingerprint,
    value_digest,
    whole_digest,
)
from importer.state.row_digests import item_digests, object_digests, value_digests
from importer.state.row_keys import memo
from tests.state.builders import event, item, purchase


def _stored(data: Any) -> bytes:
    """What every state file so far holds: 8 bytes of BLAKE2b over canonical JSON."""
    return blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()


def _as_made(obj: Any) -> bytes:
    """A whole digest: 8 bytes of BLAKE2b over the object's JSON, keys in its own order (only
    a shortcut: see ``test_a_file_from_before_unsorted_whole_digests_sends_nothing_again``)."""
    return blake2b(orjson.dumps(obj), digest_size=8).digest()


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
    assert whole_digest(obj) == _as_made(obj)
    event = {"external_id": "u1", "name": "bought", "time": "2026-01-01T00:00:00Z"}
    assert event_fingerprint(event) == _stored(("e", "bought", "2026-01-01T00:00:00Z", {}))
    purchase = {"product_id": "p", "time": "t", "price": 1.5, "currency": "EUR"}
    assert purchase_fingerprint(purchase) == _stored(("p", "p", "t", {}, 1.5, "EUR", 1))
    assert operation_digest("kK1", "points", {"inc": 1}) == OPERATION + _stored(
        ("o", "kK1", "points", ["inc"])
    )


def test_a_whole_digest_follows_the_objects_key_order_and_a_value_digest_does_not() -> None:
    # The order is the mapping's, the same every night; sorting the keys cost ~40% of it.
    ordered = {"external_id": "u1", "city": "Hamburg", "prefs": {"b": 1, "a": 2}}
    reordered = {"city": "Hamburg", "external_id": "u1", "prefs": {"a": 2, "b": 1}}
    assert whole_digest(ordered) == _as_made(ordered) != _stored(ordered)
    assert whole_digest(ordered) != whole_digest(reordered)  # costs a comparison by value
    assert value_digest(ordered["prefs"]) == value_digest(reordered["prefs"])


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


# Values equal in Python but not in JSON (True == 1 == 1.0, 0.0 == -0.0), big ints, operators,
# containers: a remembered digest must be the one the value itself has.
_SCALARS = st.sampled_from(
    [True, False, 1, 0, 1.0, 0.0, -0.0, "1", "true", "", 2**70, 2**64, "Hamburg", "x" * 65]
)
_VALUES = st.one_of(
    _SCALARS,
    st.integers(),
    st.text(max_size=4),
    st.floats(allow_nan=False),
    st.lists(_SCALARS, max_size=2),
    st.dictionaries(st.sampled_from(["inc", "a", "b"]), _SCALARS, max_size=2),
)


@given(rows=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUES), max_size=12))
def test_a_remembered_value_digest_is_the_values_own(rows: list[dict[str, Any]]) -> None:
    """``_value_digests`` remembers repeated values' digests per attribute name, a few short
    ones of a few names (``MEMO_VALUES``, ``MEMO_CHARS``, ``MEMO_NAMES``): what it answers is
    what hashing the value gives."""
    row_digests._memos.clear()
    limits = row_digests.MEMO_VALUES, row_digests.MEMO_NAMES
    row_digests.MEMO_VALUES, row_digests.MEMO_NAMES = 3, 2  # full caches too
    try:
        for row in rows * 2:  # each value again, once remembered
            obj = {"external_id": "u1", **row}
            assert value_digests(obj, "xu1") == {name: value_digest(v) for name, v in row.items()}
        remembered = [value for memo in row_digests._memos.values() for value in memo]
        assert all(
            len(value) <= row_digests.MEMO_CHARS for value in remembered if type(value) is str
        )
        assert len(row_digests._memos) <= 2
    finally:
        row_digests.MEMO_VALUES, row_digests.MEMO_NAMES = limits
        row_digests._memos.clear()


_OBJECTS = st.lists(
    st.fixed_dictionaries(
        {"external_id": st.sampled_from(["u1", "u2", "u3", ""])},
        optional={"a": _VALUES, "b": _VALUES, "_merge_objects": st.booleans()},
    ),
    max_size=3,
)


@given(objects=_OBJECTS, values=st.booleans())
def test_digests_from_the_wires_json_are_the_digests_made_alone(
    objects: list[dict[str, Any]], values: bool
) -> None:
    """A worker hashes the JSON it sends (``attributes_json``) for the whole digests: they are
    the digests ``item_digests`` makes on its own, object by object; none is passed when an
    object is not JSON (2**70: ``wire_of`` fails for it as before)."""
    row = item(2)._replace(attributes=tuple(objects))
    fragments = attributes_json(row)
    if fragments is None:
        with pytest.raises(TypeError):
            orjson.dumps(objects)
        return
    assert item_digests(row, values, None, fragments) == item_digests(row, values)


def test_a_file_from_before_unsorted_whole_digests_sends_nothing_again(tmp_path: Path) -> None:
    """Files written before hold whole digests over sorted keys. The first night after finds
    none equal, compares every user value by value, sends nothing equal (events and purchases
    are fingerprinted as before: none is sent again) and stores the new whole digests; the
    night after recognises the users by them."""
    path = tmp_path / "nightly.state"
    row = item(
        2, attributes={"points": 5, "city": "Berlin"}, events=[event()], purchases=[purchase()]
    )
    with DeliveryState.open(path, run_label="before") as state:
        state.confirm([row])
    with sqlite3.connect(path) as conn:  # as the version before wrote it
        conn.execute("UPDATE users SET whole = ?", (_stored(row.attributes[0]),))
    conn.close()
    for compared in (1.0, 0.0):  # the night after the upgrade, then the next
        with DeliveryState.open(path, run_label="after") as state:
            assert state.filter_many([row]) == [Filtered(None, 2, 2)]
            assert state.compared_share() == compared


_OCCURRENCES = st.lists(
    st.none() | st.tuples(st.sampled_from(["xu1", "xu2"]), st.sampled_from([b"a", b"b", b"c"])),
    max_size=3,
)


@given(_OCCURRENCES, _OCCURRENCES, st.sets(st.tuples(st.just("xu1"), st.just(b"a"))))
def test_a_row_sent_whole_is_remembered_as_one_whose_events_were_each_looked_at(
    events: list[Any], purchases: list[Any], known: set[Any]
) -> None:
    """``row_keys.memo`` of a row whose events and purchases are the very ones it sends (a new
    user's, sent whole) skips looking at each: it answers what looking at each answers."""
    digests = ((("xu1", b"w" * 8, 2, None),), tuple(events), tuple(purchases))
    each = (digests[0], tuple([*events]), tuple([*purchases]))  # equal, not the same tuples
    assert memo(b"k", digests, digests, known) == memo(b"k", digests, each, known)
