"""The delivery state: only changes are sent, an event never twice, one run at a time."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import importer.state.record
from importer.errors import ConfigError, FatalError, Locked
from importer.models import Item, RowRef
from importer.state.delivery import DeliveryState, Filtered, inspect_state
from tests.state.builders import event, exports, item, nights, purchase


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nightly.state"


@pytest.fixture
def state(path: Path) -> Iterator[DeliveryState]:
    with DeliveryState.open(path, run_label="test") as opened:
        yield opened


def deliver(state: DeliveryState, *items: Item) -> list[Filtered]:
    """Filter, then confirm whatever was left to send: one night's run."""
    filtered = state.filter_many(items)
    state.confirm([f.item for f in filtered if f.item is not None])
    return filtered


def reopen(path: Path) -> DeliveryState:
    return DeliveryState.open(path, run_label="next night")


# --- attributes ---------------------------------------------------------------------------------


def test_unchanged_attributes_are_dropped_and_changed_ones_kept(path: Path) -> None:
    with reopen(path) as state:
        deliver(state, item(2, attributes={"first_name": "Anna", "points": 5, "vip": True}))
    with reopen(path) as state:
        same = state.filter(item(2, attributes={"first_name": "Anna", "points": 5, "vip": True}))
        changed = state.filter(item(3, attributes={"first_name": "Anna", "points": 6, "vip": True}))
    assert same == Filtered(None, attributes_unchanged=3, events_already_sent=0)
    assert changed.item is not None
    assert changed.item.attributes == ({"external_id": "u1", "points": 6},)
    assert changed.attributes_unchanged == 2


def test_a_user_with_nothing_new_sends_no_attributes_object_but_keeps_its_events(
    state: DeliveryState,
) -> None:
    deliver(state, item(2, attributes={"city": "Berlin"}))
    filtered = state.filter(item(3, attributes={"city": "Berlin"}, events=[event()]))
    assert filtered.item is not None
    assert filtered.item.attributes == ()
    assert filtered.item.events == (event(),)
    assert filtered.attributes_unchanged == 1


def test_identifier_and_flags_stay_whenever_an_attribute_is_sent(state: DeliveryState) -> None:
    deliver(state, item(2, attributes={"_update_existing_only": False, "a": 1, "b": 1}))
    filtered = state.filter(item(3, attributes={"_update_existing_only": False, "a": 1, "b": 2}))
    assert filtered.item is not None
    assert filtered.item.attributes == (
        {"external_id": "u1", "_update_existing_only": False, "b": 2},
    )


def test_email_beside_a_primary_identifier_is_an_attribute_but_an_email_only_user_keeps_it(
    state: DeliveryState,
) -> None:
    email_user = {"email": "a@example.com", "phone": "+4930123", "city": "Berlin"}
    deliver(state, item(2, attributes={"email": "a@example.com", "city": "Berlin"}))
    email_only = Item(RowRef("x.csv", 3), {}, "email:a@example.com", (email_user,))
    deliver(state, email_only)
    again = state.filter(item(4, attributes={"email": "a@example.com", "city": "Hamburg"}))
    moved = {**email_user, "city": "Hamburg"}
    email_again = state.filter(Item(RowRef("x.csv", 5), {}, "email:a@example.com", (moved,)))
    assert again.item is not None
    assert again.item.attributes == ({"external_id": "u1", "city": "Hamburg"},)
    assert email_again.item is not None
    assert email_again.item.attributes == ({"email": "a@example.com", "city": "Hamburg"},)


def test_null_is_remembered_as_unset_and_sending_null_again_is_unchanged(path: Path) -> None:
    with reopen(path) as state:
        deliver(state, item(2, attributes={"email": "a@example.com", "phone": "+4930"}))
        deliver(state, item(3, attributes={"email": None, "phone": "+4930"}))
        assert state.inspect()["attributes_unset"] == 1
    with reopen(path) as state:
        unset_again = state.filter(item(4, attributes={"email": None, "phone": "+4930"}))
        set_again = state.filter(item(5, attributes={"email": "b@example.com"}))
    assert unset_again == Filtered(None, 2, 0)
    assert set_again.item is not None
    assert set_again.item.attributes == ({"external_id": "u1", "email": "b@example.com"},)


def test_operators_are_always_sent_and_make_the_value_unknown(state: DeliveryState) -> None:
    deliver(state, item(2, attributes={"points": 5, "tags": ["a"]}))
    deliver(state, item(3, attributes={"points": {"inc": 1}, "tags": {"add": ["b"]}}))
    inc_again = state.filter(item(4, attributes={"points": {"inc": 1}, "tags": ["a"]}))
    assert inc_again.item is not None
    assert inc_again.item.attributes == (
        {"external_id": "u1", "points": {"inc": 1}, "tags": ["a"]},
    )
    back_to_five = state.filter(item(5, attributes={"points": 5}))
    assert back_to_five.item is not None  # 5 + 1 is 6 in Braze: 5 must be sent again


def test_a_row_repeating_values_in_flight_sends_them_once(state: DeliveryState) -> None:
    first, repeat, changed = state.filter_many(
        [
            item(2, attributes={"city": "Berlin", "vip": True}, events=[event(order=1)]),
            item(3, attributes={"city": "Berlin", "vip": True}, events=[event(order=2)]),
            item(4, attributes={"city": "Hamburg", "vip": True}),
        ]
    )
    assert first.item is not None and first.attributes_unchanged == 0
    assert repeat.item is not None and repeat.item.attributes == ()
    assert repeat.attributes_unchanged == 2
    assert changed.item is not None
    assert changed.item.attributes == ({"external_id": "u1", "city": "Hamburg"},)


def test_a_value_changed_and_changed_back_within_a_run_is_sent_next_night(path: Path) -> None:
    """The whole-object shortcut must not hide a later change confirmed for the same user."""
    with reopen(path) as state:
        deliver(state, item(2, attributes={"city": "Berlin", "vip": True}))
        deliver(state, item(3, attributes={"city": "Hamburg", "vip": True}))
    with reopen(path) as state:
        filtered = state.filter(item(2, attributes={"city": "Berlin", "vip": True}))
    assert filtered.item is not None
    assert filtered.item.attributes == ({"external_id": "u1", "city": "Berlin"},)


def test_a_later_row_of_a_new_user_in_flight_leaves_the_first_rows_digests_alone(
    path: Path,
) -> None:
    """A new user's row goes in flight as its own digests (no copy): what a later row of the
    same user puts in flight, or what confirming or releasing takes out, must not change them."""
    with reopen(path) as state:
        first, changed = state.filter_many(
            [
                item(2, attributes={"city": "Berlin", "vip": True}),
                item(3, attributes={"city": "Hamburg", "vip": True}),
            ]
        )
        assert first.item is not None and changed.item is not None
        digests = first.item.digests[0][0][3]
        before = dict(digests)
        state.confirm([first.item])
        repeat = state.filter(item(4, attributes={"city": "Hamburg", "vip": True}))
        assert repeat.item is None  # Hamburg still in flight, vip confirmed
        state.confirm([changed.item])
        assert digests == before
    with reopen(path) as state:
        assert state.filter(item(5, attributes={"city": "Hamburg", "vip": True})).item is None
        back = state.filter(item(6, attributes={"city": "Berlin", "vip": True}))
        assert back.item is not None
        assert back.item.attributes == ({"external_id": "u1", "city": "Berlin"},)


def test_a_new_users_value_that_cannot_be_compared_is_sent_and_not_remembered(
    path: Path,
) -> None:
    """An int beyond 64 bits has no canonical JSON here: no digest, so it is always sent."""
    huge = 2**70
    with reopen(path) as state:
        deliver(state, item(2, attributes={"city": "Berlin", "big": huge}))
        assert state.inspect()["attribute_values"] == 1
    with reopen(path) as state:
        again = state.filter(item(3, attributes={"city": "Berlin", "big": huge}))
    assert again.item is not None
    assert again.item.attributes == ({"external_id": "u1", "big": huge},)


def test_a_released_new_user_leaves_a_later_rows_values_in_flight(state: DeliveryState) -> None:
    first, changed = state.filter_many(
        [item(2, attributes={"city": "Berlin"}), item(3, attributes={"city": "Hamburg"})]
    )
    assert first.item is not None and changed.item is not None
    state.release([first.item])
    assert state.filter(item(4, attributes={"city": "Hamburg"})).item is None
    again = state.filter(item(5, attributes={"city": "Berlin"}))
    assert again.item is not None and again.item.attributes == first.item.attributes


def test_a_value_sent_between_two_equal_ones_in_flight_keeps_a_later_row_sent(
    state: DeliveryState,
) -> None:
    """A, B, A in flight; the first A confirmed, then B: the second A is still to land, so a
    later B must go out (it was compared with the database's B and left out)."""
    rows = [item(n, attributes={"tier": tier}) for n, tier in ((2, "A"), (3, "B"), (4, "A"))]
    first, second, third = (f.item for f in state.filter_many(rows))
    assert first is not None and second is not None and third is not None
    state.confirm([first])
    state.confirm([second])
    later = state.filter(item(5, attributes={"tier": "B"}))
    assert later.item is not None
    assert later.item.attributes == ({"external_id": "u1", "tier": "B"},)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tiers=st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=8),
    lags=st.lists(st.integers(min_value=0, max_value=3), min_size=8, max_size=8),
    stored=st.sampled_from([None, "A", "B"]),
)
def test_what_lands_last_is_the_last_rows_value_however_confirmations_lag(
    tmp_path: Path, tiers: list[str], lags: list[int], stored: str | None
) -> None:
    """One user's rows filtered in order, Braze confirming them in order but late: whatever
    the lag, the last value sent (the one Braze keeps) is the last row's."""
    with DeliveryState.open(
        tmp_path / f"{len(list(tmp_path.iterdir()))}.state", run_label="t"
    ) as state:
        landed = stored
        if stored is not None:
            deliver(state, item(1, attributes={"tier": stored}))
        pending: list[Item] = []
        for line, (tier, lag) in enumerate(zip(tiers, lags, strict=False), 2):
            sent = state.filter(item(line, attributes={"tier": tier})).item
            if sent is not None and sent.attributes:
                pending.append(sent)
            while len(pending) > lag:  # Braze answers the oldest request
                confirmed = pending.pop(0)
                state.confirm([confirmed])
                landed = confirmed.attributes[0].get("tier", landed)
        for confirmed in pending:
            state.confirm([confirmed])
            landed = confirmed.attributes[0].get("tier", landed)
    assert landed == tiers[-1]


# --- events and purchases -----------------------------------------------------------------------


def test_events_and_purchases_delivered_once_are_never_sent_again(path: Path) -> None:
    night = item(2, events=[event(order=1)], purchases=[purchase()])
    with reopen(path) as state:
        deliver(state, night)
    with reopen(path) as state:
        again = state.filter(night)
        other = state.filter(
            item(3, events=[event(order=2)], purchases=[purchase(price=10.0), purchase(quantity=2)])
        )
    assert again == Filtered(None, 0, 2)
    assert other.item is not None
    assert len(other.item.events) == 1 and len(other.item.purchases) == 2


def test_the_same_event_on_another_user_is_another_event(state: DeliveryState) -> None:
    deliver(state, item(2, events=[event("u1")]))
    filtered = state.filter(item(3, user="u2", events=[event("u2")]))
    assert filtered.item is not None and filtered.events_already_sent == 0


def test_an_event_twice_in_one_input_is_sent_once(state: DeliveryState) -> None:
    first, second = state.filter_many(
        [item(2, events=[event(), event()]), item(3, events=[event()])]
    )
    assert first.item is not None
    assert first.item.events == (event(),)
    assert first.events_already_sent == 1
    assert second == Filtered(None, 0, 1)


def test_refused_objects_are_sent_again_next_time(path: Path) -> None:
    with reopen(path) as state:
        refused = state.filter(item(2, attributes={"city": "Berlin"}, events=[event()]))
        assert refused.item is not None  # sent, but Braze refused it: never confirmed
    with reopen(path) as state:
        filtered = state.filter(item(2, attributes={"city": "Berlin"}, events=[event()]))
    assert filtered == Filtered(filtered.item, 0, 0)
    assert filtered.item is not None and filtered.item.object_count == 2


def test_released_objects_are_sent_again_in_the_same_run(state: DeliveryState) -> None:
    refused = state.filter(item(2, attributes={"city": "Berlin"}, events=[event()]))
    assert refused.item is not None
    state.release([refused.item])
    filtered = state.filter(item(3, attributes={"city": "Berlin"}, events=[event()]))
    assert filtered.item is not None and filtered.item.object_count == 2


def test_filter_many_decides_like_filter_one_at_a_time(tmp_path: Path) -> None:
    rows = [
        item(2, attributes={"a": 1}, events=[event(order=1)]),
        item(3, user="u2", attributes={"a": 1}),
        item(4, attributes={"a": 2}, events=[event(order=1), event(order=2)]),
        item(5, user="u2", attributes={"a": 1}, purchases=[purchase()]),
    ]
    with DeliveryState.open(tmp_path / "one.state", run_label="x") as one:
        deliver(one, rows[0])
        singly = [one.filter(row) for row in rows]
    with DeliveryState.open(tmp_path / "many.state", run_label="x") as many:
        deliver(many, rows[0])
        batched = many.filter_many(rows)
    assert singly == batched


# --- the lock -----------------------------------------------------------------------------------


def test_a_second_open_is_refused_naming_the_running_one(path: Path) -> None:
    with (
        DeliveryState.open(path, run_label="nightly-0501"),
        pytest.raises(Locked) as refused,
    ):
        DeliveryState.open(path, run_label="nightly-0502")
    message = str(refused.value)
    assert refused.value.exit_code == 75  # temporary: the scheduler may try again later
    assert "nightly-0501" in message and f"pid {os.getpid()}" in message
    assert socket.gethostname() in message and "started 20" in message


def test_the_lock_is_released_on_close(path: Path) -> None:
    DeliveryState.open(path, run_label="first").close()
    with DeliveryState.open(path, run_label="second") as state:
        assert state.inspect()["runs"][0]["label"] == "second"


def test_the_lock_dies_with_a_killed_process(path: Path) -> None:
    holder = (
        "import sys; from pathlib import Path; from importer.state.delivery import DeliveryState\n"
        f"state = DeliveryState.open(Path({str(path)!r}), run_label='killed')\n"
        "print('locked', flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with pytest.raises(Locked, match=f"'killed' \\(pid {proc.pid} "):
            DeliveryState.open(path, run_label="waiting")
    finally:
        proc.kill()  # SIGKILL: no close(), no atexit
        proc.wait()
    with DeliveryState.open(path, run_label="after") as state:
        runs = state.inspect()["runs"]
    assert [(run["label"], run["ended"]) for run in runs[:2]] == [("after", None), ("killed", None)]


# --- the file -----------------------------------------------------------------------------------


def test_files_are_mode_0600_whatever_the_umask(path: Path) -> None:
    old = os.umask(0)
    try:
        with DeliveryState.open(path, run_label="x") as state:
            deliver(state, item(2, attributes={"a": 1}))
            created = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in created}
    finally:
        os.umask(old)
    assert {f"{path.name}{s}" for s in ("", "-wal", "-shm", ".lock")} <= modes.keys()
    assert set(modes.values()) == {0o600}


def test_an_existing_file_is_tightened_to_0600(path: Path) -> None:
    DeliveryState.open(path, run_label="x").close()
    path.chmod(0o644)
    DeliveryState.open(path, run_label="x").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unusable_files_are_config_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.state"
    garbage.write_bytes(b"not a database, just some bytes" * 200)
    with pytest.raises(ConfigError, match="cannot be used"):
        DeliveryState.open(garbage, run_label="x")
    with pytest.raises(ConfigError, match="does not exist"):
        DeliveryState.open(tmp_path / "missing" / "x.state", run_label="x")
    with pytest.raises(ConfigError, match="does not exist"):
        inspect_state(tmp_path / "never.state")
    DeliveryState.open(garbage.with_name("free.state"), run_label="x").close()  # lock released


def test_a_failed_confirm_writes_nothing(
    state: DeliveryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(importer.state.record, "add_delivered", broken)
    filtered = state.filter(item(2, attributes={"a": 1}, events=[event()]))
    assert filtered.item is not None
    with pytest.raises(FatalError, match="recording deliveries failed: disk I/O error"):
        state.confirm([filtered.item])
    facts = state.inspect()
    assert (facts["users"], facts["attribute_values"], facts["events"]) == (0, 0, 0)


def test_inspect_reports_users_values_events_size_and_runs(path: Path) -> None:
    with reopen(path) as state:
        deliver(
            state,
            item(2, attributes={"a": 1, "b": None}, events=[event(order=1)]),
            item(3, user="u2", events=[event("u2"), event("u2", order=2)]),
            item(4, user="u3", purchases=[purchase("u3")]),
        )
        state.record_run("nightly", {"rows_read": 3, "delivered": 3})
    with reopen(path):
        facts = inspect_state(path)  # no lock needed: works while a run holds the file
    assert facts["users"] == 3
    assert (facts["attribute_values"], facts["attributes_unset"], facts["attribute_names"]) == (
        2,
        1,
        2,
    )
    assert (facts["events"], facts["purchases"]) == (3, 1)
    assert facts["file_bytes"] > 0 and facts["database_bytes"] > 0
    latest, nightly = facts["runs"][:2]
    assert latest["label"] == "next night" and latest["ended"] is None
    assert nightly["label"] == "nightly" and nightly["ended"] >= nightly["started"]
    assert nightly["summary"] == {"rows_read": 3, "delivered": 3}
    assert nightly["pid"] == os.getpid()


# --- property -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nights())
def test_whatever_was_confirmed_is_left_out_next_time(rows: list[Item]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.state"
        with DeliveryState.open(path, run_label="first") as state:
            state.confirm(rows)
            assert all(f.item is None for f in state.filter_many(rows))
        with DeliveryState.open(path, run_label="second") as state:
            assert [f.item for f in state.filter_many(rows)] == [None] * len(rows)
            assert all(state.filter(row).item is None for row in rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_braze_ends_up_with_the_export_and_no_event_twice(
    nights: list[tuple[list[Item], list[bool], int]],
) -> None:
    """A model of Braze applies what was sent; refused rows change nothing there."""
    profiles: dict[str, dict[str, Any]] = {}
    received: dict[tuple[str, str, str], int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows, refused, batch in nights:
            with DeliveryState.open(Path(tmp) / "s.state", run_label="night") as state:
                for start in range(0, len(rows), batch):
                    chunk = range(start, min(start + batch, len(rows)))
                    filtered = state.filter_many([rows[i] for i in chunk])
                    sent = [(f.item, refused[i]) for i, f in zip(chunk, filtered, strict=True)]
                    delivered = [kept for kept, no in sent if kept is not None and not no]
                    for kept in delivered:
                        for obj in kept.attributes:
                            profiles.setdefault(obj["external_id"], {}).update(obj)
                        for ev in kept.events:  # an event creates the profile too
                            profiles.setdefault(
                                ev["external_id"], {"external_id": ev["external_id"]}
                            )
                            key = (ev["external_id"], ev["name"], ev["time"])
                            received[key] = received.get(key, 0) + 1
                    state.confirm(delivered)
    last_rows = nights[-1][0]
    expected: dict[str, dict[str, Any]] = {}
    for row in last_rows:
        for obj in row.attributes:
            expected.setdefault(obj["external_id"], {}).update(obj)
    for user, values in expected.items():
        assert {k: profiles[user].get(k) for k in values} == values
    assert set(received.values()) <= {1}
    for row in last_rows:
        assert all((ev["external_id"], ev["name"], ev["time"]) in received for ev in row.events)
