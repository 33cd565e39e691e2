"""Braze object rules: one table row per rule, valid and invalid, plus a never-raises property."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.rules.objects import check_object
from importer.rules.user_fields import CURRENCIES
from importer.rules.violation import Violation

ID = {"external_id": "u1"}
TIME = "2024-03-01T10:00:00+01:00"
EVENT = {**ID, "name": "signup", "time": TIME}
PURCHASE = {**ID, "product_id": "sku-1", "currency": "EUR", "price": 9.5, "time": TIME}


def attrs(**fields: Any) -> dict[str, Any]:
    return {**ID, **fields}


def event(**fields: Any) -> dict[str, Any]:
    return {**EVENT, **fields}


def purchase(**fields: Any) -> dict[str, Any]:
    return {**PURCHASE, **fields}


def without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


VALID: list[tuple[str, dict[str, Any]]] = [
    ("attributes", {"external_id": "u1"}),
    ("attributes", {"braze_id": "5f2b"}),
    ("attributes", {"user_alias": {"alias_name": "n", "alias_label": "crm"}, "x": 1}),
    ("attributes", {"email": "anna@example.com", "first_name": "Anna"}),
    ("attributes", {"phone": "+14155552671"}),
    ("attributes", {"push_token_import": True, "push_tokens": [{"app_id": "a", "token": "t"}]}),
    ("attributes", attrs(external_id="x" * 987)),
    ("attributes", attrs(external_id="é" * 493)),  # 986 bytes
    ("attributes", {"user_alias": {"alias_name": "a" * 236, "alias_label": "b" * 236}}),
    ("attributes", attrs(email="first.last+tag@sub.example.co.uk")),
    ("attributes", attrs(email=None)),
    ("attributes", attrs(phone="(030) 123-4567")),
    ("attributes", attrs(gender="F")),
    ("attributes", attrs(gender=None)),
    ("attributes", attrs(email_subscribe="opted_in", push_subscribe="unsubscribed")),
    ("attributes", attrs(dob="2000-02-29")),
    ("attributes", attrs(dob=None)),
    ("attributes", attrs(country="de")),
    ("attributes", attrs(current_location={"longitude": 13.4, "latitude": 52.5})),
    ("attributes", attrs(nick="n" * 255, tags=["a", "b"], n=1, f=1.5, b=False, z=None)),
    ("attributes", attrs(count={"inc": -2}, prefs={"k": {"deep": "v"}})),
    ("attributes", attrs(tags={"add": ["a", 1, 2.5, True], "remove": ["b"]})),
    (
        "attributes",
        attrs(
            subscription_groups=[
                {
                    "subscription_group_id": "4b3c1e2a-1111-2222-3333-444455556666",
                    "subscription_state": "subscribed",
                    "use_double_opt_in_logic": True,
                }
            ]
        ),
    ),
    ("attributes", attrs(_update_existing_only=False)),
    ("events", EVENT),
    ("events", event(time="2024-03-01T10:00:00:123Z")),  # Braze's colon-millis form
    ("events", event(time="2024-03-01")),
    ("events", event(name="n" * 255, properties={"plan": "gold", "seats": 3, "k" * 255: "v"})),
    ("events", event(properties={"items": ["a" * 250] * 300})),  # ~76 KB, under 100 KB
    ("events", event(_update_existing_only=True, app_id="app")),
    ("purchases", PURCHASE),
    ("purchases", purchase(quantity=1, price=0)),
    ("purchases", purchase(quantity=100, currency="JPY", price=1000)),
    ("purchases", purchase(properties={"color": "red", "size": 42})),
]


@pytest.mark.parametrize(("array", "obj"), VALID)
def test_valid_objects_pass(array: str, obj: dict[str, Any]) -> None:
    assert check_object(array, obj) is None


INVALID: list[tuple[str, dict[str, Any], str]] = [
    # identifiers
    ("attributes", {"first_name": "x"}, "missing_identifier"),
    ("events", without(EVENT, "external_id"), "missing_identifier"),
    ("attributes", {"email": None, "phone": None}, "missing_identifier"),
    ("attributes", {"external_id": "u", "braze_id": "b"}, "multiple_identifiers"),
    (
        "attributes",
        {"external_id": "u", "user_alias": {"alias_name": "a", "alias_label": "b"}},
        "external_id_with_alias",
    ),
    ("attributes", {"external_id": ""}, "invalid_external_id"),
    ("attributes", {"external_id": 42}, "invalid_external_id"),
    ("attributes", {"external_id": "x" * 988}, "external_id_too_long"),
    ("attributes", {"external_id": "é" * 494}, "external_id_too_long"),  # 988 bytes
    ("attributes", {"braze_id": ""}, "invalid_braze_id"),
    ("attributes", {"user_alias": "crm:1"}, "invalid_user_alias"),
    ("attributes", {"user_alias": {"alias_name": "", "alias_label": "b"}}, "invalid_user_alias"),
    ("attributes", {"user_alias": {"alias_name": "a"}}, "invalid_user_alias"),
    (
        "attributes",
        {"user_alias": {"alias_name": "a", "alias_label": "b" * 237}},
        "invalid_user_alias",
    ),
    ("attributes", {"push_token_import": False}, "missing_identifier"),
    # standard fields
    ("attributes", {"email": "not-an-email"}, "invalid_email"),
    ("attributes", attrs(email="a b@example.com"), "invalid_email"),
    ("attributes", attrs(email="a@localhost"), "invalid_email"),
    ("attributes", {"phone": "call me"}, "invalid_phone"),
    ("attributes", attrs(phone="12"), "invalid_phone"),
    ("attributes", attrs(gender="male"), "invalid_gender"),
    ("attributes", attrs(gender=["M"]), "invalid_gender"),
    ("attributes", attrs(email_subscribe="yes"), "invalid_subscription_state"),
    ("attributes", attrs(push_subscribe=None), "invalid_subscription_state"),
    ("attributes", attrs(dob="21.12.1980"), "invalid_date"),
    ("attributes", attrs(dob="2001-02-29"), "invalid_date"),
    ("attributes", attrs(dob="1980-12-21T00:00:00"), "invalid_date"),
    ("attributes", attrs(country="Germany"), "invalid_country"),
    ("attributes", attrs(current_location={"longitude": 1}), "invalid_location"),
    ("attributes", attrs(first_name=7), "invalid_type"),
    ("attributes", attrs(_update_existing_only="false"), "invalid_update_existing_only"),
    ("attributes", attrs(push_tokens=[{"app_id": "a"}]), "invalid_push_tokens"),
    (
        "attributes",
        attrs(push_tokens=[{"app_id": "a", "token": "t", "device_id": "short"}]),
        "invalid_device_id",
    ),
    ("attributes", attrs(subscription_groups=[{"x": 1}]), "invalid_subscription_groups"),
    # custom attributes
    ("attributes", attrs(nick="n" * 256), "string_too_long"),
    ("attributes", attrs(tags=["ok", "t" * 256]), "string_too_long"),
    ("attributes", attrs(count={"inc": 1.5}), "invalid_increment"),
    ("attributes", attrs(count={"inc": "2"}), "invalid_increment"),
    ("attributes", attrs(count={"inc": True}), "invalid_increment"),
    ("attributes", attrs(tags={"add": "vip"}), "invalid_array_operation"),
    ("attributes", attrs(tags={"add": ["a"], "remove": [None]}), "invalid_array_operation"),
    ("attributes", attrs(tags={"add": [{"k": 1}]}), "invalid_array_operation"),
    ("attributes", attrs(tags={"remove": ["t" * 256]}), "string_too_long"),
    (
        "attributes",
        attrs(
            subscription_groups=[
                {"subscription_group_id": "g1", "subscription_state": "subscribed"}
            ]
        ),
        "invalid_subscription_group_id",
    ),
    (
        "attributes",
        attrs(
            subscription_groups=[
                {
                    "subscription_group_id": "4b3c1e2a-1111-2222-3333-444455556666",
                    "subscription_state": "opted_in",
                }
            ]
        ),
        "invalid_subscription_groups",
    ),
    ("attributes", attrs(**{"": "x"}), "invalid_attribute_name"),
    ("attributes", attrs(when=object()), "invalid_type"),
    # events
    ("events", without(EVENT, "name"), "missing_name"),
    ("events", without(EVENT, "time"), "missing_time"),
    ("events", event(name=""), "invalid_event_name"),
    ("events", event(name="n" * 256), "invalid_event_name"),
    ("events", event(name=5), "invalid_event_name"),
    ("events", event(time="2024-02-30T10:00:00Z"), "invalid_time"),
    ("events", event(time="yesterday"), "invalid_time"),
    ("events", event(time=1700000000), "invalid_time"),
    ("events", event(properties=["a"]), "invalid_properties"),
    ("events", event(properties={"$plan": "x"}), "invalid_property_key"),
    ("events", event(properties={"": "x"}), "invalid_property_key"),
    ("events", event(properties={"k" * 256: "x"}), "invalid_property_key"),
    ("events", event(properties={"time": "x"}), "reserved_property"),
    ("events", event(properties={"event_name": "x"}), "reserved_property"),
    ("events", event(properties={"plan": "p" * 256}), "string_too_long"),
    ("events", event(properties={"items": ["a" * 250] * 420}), "properties_too_large"),
    ("events", event(_update_existing_only=1), "invalid_update_existing_only"),
    # purchases
    ("purchases", without(PURCHASE, "product_id"), "missing_product_id"),
    ("purchases", without(PURCHASE, "currency"), "missing_currency"),
    ("purchases", without(PURCHASE, "price"), "missing_price"),
    ("purchases", without(PURCHASE, "time"), "missing_time"),
    ("purchases", purchase(product_id="p" * 256), "invalid_product_id"),
    ("purchases", purchase(currency="EURO"), "invalid_currency"),
    ("purchases", purchase(currency="eur"), "invalid_currency"),
    ("purchases", purchase(price="9.50"), "invalid_price"),
    ("purchases", purchase(price=True), "invalid_price"),
    ("purchases", purchase(price=float("nan")), "invalid_price"),
    ("purchases", purchase(quantity=0), "invalid_quantity"),
    ("purchases", purchase(quantity=101), "invalid_quantity"),
    ("purchases", purchase(quantity=2.0), "invalid_quantity"),
    ("purchases", purchase(quantity=True), "invalid_quantity"),
    ("purchases", purchase(time="2024-13-01T00:00:00Z"), "invalid_time"),
    ("purchases", purchase(properties={"price": 1}), "reserved_property"),
    ("purchases", purchase(properties={"currency": "EUR"}), "reserved_property"),
    ("purchases", purchase(properties={"quantity": 2}), "reserved_property"),
    ("purchases", purchase(properties={"product_id": "x"}), "reserved_property"),
    ("purchases", purchase(properties={"items": ["a" * 250] * 210}), "properties_too_large"),
    # shape
    ("attributes", "not an object", "invalid_object"),  # type: ignore[list-item]
    ("profiles", dict(ID), "unknown_array"),
]


@pytest.mark.parametrize(("array", "obj", "code"), INVALID)
def test_invalid_objects_name_the_rule(array: str, obj: dict[str, Any], code: str) -> None:
    violation = check_object(array, obj)
    assert violation is not None
    assert violation.code == code
    assert violation.message and "\n" not in violation.message


def test_message_names_the_field() -> None:
    violation = check_object("purchases", purchase(quantity=500))
    assert violation == Violation("invalid_quantity", "quantity must be an integer 1..100")
    violation = check_object("events", event(properties={"time": 1}))
    assert violation is not None and "properties.time" in violation.message


def test_first_broken_rule_wins() -> None:
    # No identifier is reported before the bad quantity.
    violation = check_object("purchases", {**without(PURCHASE, "external_id"), "quantity": 0})
    assert violation is not None and violation.code == "missing_identifier"


def test_currency_table_is_current_alphabetic_codes() -> None:
    assert {"USD", "EUR", "JPY", "GBP", "CHF", "SLE", "VES"} <= CURRENCIES
    assert all(len(code) == 3 and code.isupper() for code in CURRENCIES)
    assert "DEM" not in CURRENCIES  # withdrawn long ago


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "external_id", "braze_id", "user_alias", "email", "phone", "gender", "dob", "country",
        "email_subscribe", "push_subscribe", "current_location", "push_tokens", "name", "time",
        "product_id", "currency", "price", "quantity", "properties", "subscription_groups",
        "_update_existing_only", "push_token_import", "image_url", "custom",
    ]
) | st.text(max_size=6)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    array=st.sampled_from(["attributes", "events", "purchases"]),
    obj=st.dictionaries(field_names, json_values, max_size=8),
)
def test_arbitrary_json_never_raises(array: str, obj: dict[str, Any]) -> None:
    violation = check_object(array, obj)
    assert violation is None or (violation.code.islower() and violation.message)


def _phone_as_first_written(value: Any) -> bool:
    """The phone rule as two tests: the pattern and the length, then three digits."""
    pattern = re.compile(r"\+?[0-9(][0-9 ()./-]*")
    if type(value) is not str or pattern.fullmatch(value) is None or len(value) > 40:
        return False
    return sum(map(str.isdigit, value)) >= 3


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="+()0123456789 ./-a٣", max_size=45)
    | st.sampled_from(["+49 30 1234", "12", "(1)", "1-2", "+123", "1" * 41, "1" * 40])
)
def test_a_phone_passes_in_one_match_exactly_when_it_passes_both_tests(value: str) -> None:
    assert (check_object("attributes", attrs(phone=value)) is None) == _phone_as_first_written(
        value
    )
