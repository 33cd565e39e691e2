"""The sandbox's profiles and POST /users/export/ids, over real sockets on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

from importer.sandbox import Sandbox
from tests.sandbox.test_sandbox import MakeSandbox, attr, event, post, purchase

EXPORT = "/users/export/ids"
ALL_FIELDS = ["external_id", "user_aliases", "first_name", "custom_attributes"]
ALL_FIELDS += ["custom_events", "purchases"]


def export(sandbox: Sandbox, body: dict[str, Any], **kw: Any) -> Any:
    return post(sandbox, {"fields_to_export": ALL_FIELDS, **body}, path=EXPORT, **kw)


def _recent(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def test_a_profile_is_what_every_accepted_object_made_it(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True)
    first, later = _recent(3600), _recent(60)
    post(sandbox, {"attributes": [attr("u1", first_name="Ann", plan="gold", tags=["a", "a"])]})
    post(
        sandbox,
        {
            "attributes": [attr("u1", plan=None, visits={"inc": 2}, seen="2024-05-01T12:00+02:00")],
            "events": [
                {"external_id": "u1", "name": "login", "time": later},
                {"external_id": "u1", "name": "login", "time": first},
            ],
            "purchases": [{**purchase("u1", quantity=3), "time": later}],
        },
    )
    answer = export(sandbox, {"external_ids": ["u1", "nobody"]})
    assert answer.status == 200
    assert answer.body["invalid_user_ids"] == ["nobody"]
    [user] = answer.body["users"]
    assert user["external_id"] == "u1" and user["first_name"] == "Ann"
    assert user["custom_attributes"] == {
        "tags": ["a"],
        "visits": 2,
        "seen": "2024-05-01T10:00:00.000Z",  # a time comes back in the export's own form
    }
    [login] = user["custom_events"]
    assert login["count"] == 2 and login["first"][:19] == first[:19]
    assert login["last"][:19] == later[:19]
    assert user["purchases"][0]["count"] == 3  # quantity 3 counts as three


def test_old_events_are_outside_the_export_window(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True)
    post(sandbox, {"events": [event("u1")]})  # 2024-03-01: long before the last 90 days
    [user] = export(sandbox, {"external_ids": ["u1"]}).body["users"]
    assert user == {"external_id": "u1"}


def test_an_unknown_alias_is_created_only_when_asked_to(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True)
    alias = {"alias_name": "n1", "alias_label": "crm"}
    post(sandbox, {"attributes": [{"user_alias": alias, "plan": "gold"}]})
    assert export(sandbox, {"user_aliases": [alias]}).body["users"] == []
    post(
        sandbox,
        {"attributes": [{"user_alias": alias, "plan": "gold", "_update_existing_only": False}]},
    )
    [user] = export(sandbox, {"user_aliases": [alias]}).body["users"]
    assert user == {"user_aliases": [alias], "custom_attributes": {"plan": "gold"}}


def test_the_request_rules(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True)
    ids = [f"u{n}" for n in range(51)]
    assert export(sandbox, {"external_ids": ids}).status == 400
    assert export(sandbox, {"external_ids": ids[:50]}).status == 200
    no_fields = post(sandbox, {"external_ids": ["u1"]}, path=EXPORT)
    assert no_fields.status == 400 and "fields_to_export" in no_fields.body["message"]
    unknown = post(
        sandbox, {"external_ids": ["u1"], "fields_to_export": ["shoe_size"]}, path=EXPORT
    )
    assert unknown.status == 400
    assert export(sandbox, {}).status == 400
    assert export(sandbox, {"email_address": ["a@b.c"]}).status == 400
    assert export(sandbox, {"external_ids": ["u1"]}, key="wrong").status == 401
    assert post(sandbox, {}, path=EXPORT, method="GET").status == 404


def test_the_export_has_its_own_rate_limit(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(profiles=True, export_limit_per_minute=2, limit_per_minute=100)
    answers = [export(sandbox, {"external_ids": ["u1"]}) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert "X-Ratelimit-Retry-After" in answers[2].headers
    assert post(sandbox, {"attributes": [attr("u1", a=1)]}).status == 201


def test_the_lose_attribute_fault_drops_one_attribute_of_its_users(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(profiles=True, p_lose_attribute=0.2, seed=4)
    users = [f"u{n}" for n in range(50)]
    post(sandbox, {"attributes": [attr(u, a=1, b=2, first_name="X") for u in users]})
    body = export(sandbox, {"external_ids": users}).body
    lost = sandbox.lost_attributes()
    assert 0 < len(lost) < 25
    for user in body["users"]:
        names = {*user.get("custom_attributes", {}), *({"first_name"} & user.keys())}
        key = f"external_id:{user['external_id']}"
        assert names == {"a", "b", "first_name"} - {lost.get(key)}
    again = export(sandbox, {"external_ids": users}).body
    assert again == body  # the same users and attributes at every ask


def test_without_profiles_nobody_is_found(sandbox: Sandbox) -> None:
    post(sandbox, {"attributes": [attr("u1", a=1)]})
    answer = export(sandbox, {"external_ids": ["u1"]})
    assert answer.body == {"message": "success", "users": [], "invalid_user_ids": ["u1"]}


NEWS, SMS = "4b3c1e2a-1111-2222-3333-444455556666", "9b3c1e2a-1111-2222-3333-444455556666"


def _group(group: str, state: str) -> dict[str, str]:
    return {"subscription_group_id": group, "subscription_state": state}


def test_operations_and_consent_change_profiles_as_braze_applies_them(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(profiles=True)
    post(
        sandbox,
        {
            "attributes": [
                attr(
                    "u1",
                    points={"inc": 10},
                    tags=["a", "b"],
                    prefs={"mail": {"weekly": True, "daily": False}},
                    subscription_groups=[_group(NEWS, "subscribed"), _group(SMS, "subscribed")],
                    email_subscribe="opted_in",
                )
            ]
        },
    )
    answer = post(
        sandbox,
        {
            "attributes": [
                attr(
                    "u1",
                    points={"inc": -3},
                    tags={"add": ["c", "a"], "remove": ["b"]},
                    prefs={"mail": {"daily": True}, "sms": {"on": False}},
                    _merge_objects=True,
                    subscription_groups=[_group(SMS, "unsubscribed")],
                    email_subscribe="unsubscribed",
                )
            ]
        },
    )
    assert answer.status == 201 and "errors" not in answer.body
    profile = sandbox.profiles.get("external_id:u1")
    assert profile is not None
    assert profile.attributes == {
        "points": 7,
        "tags": ["c", "a"],  # an added value already there moves to the end
        "prefs": {"mail": {"weekly": True, "daily": True}, "sms": {"on": False}},
        "subscription_groups": [_group(NEWS, "subscribed"), _group(SMS, "unsubscribed")],
        "email_subscribe": "unsubscribed",
    }


def test_malformed_operations_are_refused_in_errors_and_change_nothing(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(profiles=True)
    post(sandbox, {"attributes": [attr("u1", points={"inc": 1}, tags=["a"])]})
    bad = [
        attr("u1", points={"inc": "2"}),
        attr("u1", points={"inc": 1.5}),
        attr("u1", tags={"add": "b"}),
        attr("u1", tags={"remove": [None]}),
        attr("u1", subscription_groups=[_group("newsletter", "subscribed")]),
        attr("u1", subscription_groups=[_group(NEWS, "opted_in")]),
        attr("u1", email_subscribe="yes"),
    ]
    answer = post(sandbox, {"attributes": [*bad, attr("u1", points={"inc": 4})]})
    assert answer.status == 201
    assert [error["index"] for error in answer.body["errors"]] == list(range(len(bad)))
    profile = sandbox.profiles.get("external_id:u1")
    assert profile is not None and profile.attributes == {"points": 5, "tags": ["a"]}
