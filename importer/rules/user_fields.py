"""Braze's rules for the standard user attributes (docs/braze.md, Attribute rules): the limits,
and one small checker per field; the fields every object shares (``COMMON_FIELDS``: the
identifiers of ``importer.rules.identifiers``, ``_update_existing_only``, ``app_id``).

``importer.rules.objects`` adds the rules of events and purchases and checks whole objects.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from importer.rules.identifiers import IDENTIFIER_FIELDS
from importer.rules.violation import Checker, Violation, is_number, short

MAX_STRING_CHARS = 255
MAX_IMAGE_URL_CHARS = 1024
# Braze says "100 KB" / "50 KB" (docs/braze.md, Event and purchase rules); the decimal reading
# is the smaller one, so it is the safe one.
MAX_EVENT_PROPERTIES_BYTES = 100_000
MAX_PURCHASE_PROPERTIES_BYTES = 50_000
MAX_QUANTITY = 100

RESERVED_EVENT_PROPERTIES = frozenset({"time", "event_name"})
RESERVED_PURCHASE_PROPERTIES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
GENDERS = frozenset({"M", "F", "O", "N", "P"})
SUBSCRIPTION_STATES = frozenset({"opted_in", "subscribed", "unsubscribed"})

# ISO 4217 list one (active alphabetic codes), plus codes in transition (ANG, CUC, SLL, ZWL)
# because historical purchases may still carry them.
_CURRENCY_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
    JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG
    XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
    """
CURRENCIES = frozenset(_CURRENCY_CODES.split())

# A subscription group id as the dashboard shows it (BAD_SUBSCRIPTION_GROUP_ID otherwise).
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

# --- standard attribute fields -----------------------------------------------------------------


def _flag(field: str, value: Any) -> Violation | None:
    if type(value) is not bool:
        return Violation(f"invalid_{field.lstrip('_')}", f"{field} must be true or false")
    return None


def _optional_string(field: str, value: Any) -> Violation | None:
    if value is not None and type(value) is not str:
        return Violation("invalid_type", f"{field} must be a string or null")
    return None


def _image_url(field: str, value: Any) -> Violation | None:
    if value is not None and (type(value) is not str or len(value) > MAX_IMAGE_URL_CHARS):
        return Violation("invalid_image_url", f"{field} must be a string of at most 1024 chars")
    return None


def _gender(field: str, value: Any) -> Violation | None:
    if value is not None and (type(value) is not str or value not in GENDERS):
        return Violation("invalid_gender", f"{field} must be M, F, O, N, P or null")
    return None


def _subscription(field: str, value: Any) -> Violation | None:
    if type(value) is not str or value not in SUBSCRIPTION_STATES:
        return Violation(
            "invalid_subscription_state",
            f"{field} must be opted_in, subscribed or unsubscribed, not {short(value)}",
        )
    return None


def _dob(field: str, value: Any) -> Violation | None:
    if value is None:
        return None
    # The dash positions rule out the other forms fromisoformat takes (20200101, 2020-W01-1).
    if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            date.fromisoformat(value)
            return None
        except ValueError:
            pass
    return Violation("invalid_date", f"{field} must be a real date YYYY-MM-DD: {short(value)}")


def _country(field: str, value: Any) -> Violation | None:
    if value is None:
        return None
    if type(value) is not str or len(value) != 2 or not (value.isascii() and value.isalpha()):
        return Violation("invalid_country", f"{field} must be a 2-letter code: {short(value)}")
    return None


def _location(field: str, value: Any) -> Violation | None:
    if value is None:
        return None
    if type(value) is dict:
        lon, lat = value.get("longitude"), value.get("latitude")
        if is_number(lon) and is_number(lat) and -180 <= lon <= 180 and -90 <= lat <= 90:
            return None
    return Violation("invalid_location", f"{field} must be {{longitude, latitude}} numbers")


def _push_tokens(field: str, value: Any) -> Violation | None:
    if type(value) is not list:
        return Violation("invalid_push_tokens", f"{field} must be an array of objects")
    for token in value:
        if type(token) is not dict or type(token.get("token")) is not str:
            return Violation("invalid_push_tokens", f"{field}: each needs a string token")
        device = token.get("device_id")
        if device is not None and (
            type(device) is not str or not 8 <= len(device.encode("utf-8", "replace")) <= 255
        ):
            return Violation("invalid_device_id", f"{field}: device_id must be 8-255 bytes")
    return None


def _subscription_groups(field: str, value: Any) -> Violation | None:
    if type(value) is not list:
        return Violation("invalid_subscription_groups", f"{field} must be an array")
    for group in value:
        if (
            type(group) is not dict
            or type(group.get("subscription_group_id")) is not str
            or group.get("subscription_state") not in ("subscribed", "unsubscribed")
        ):
            return Violation(
                "invalid_subscription_groups",
                f"{field}: each needs subscription_group_id and subscription_state "
                f"(subscribed or unsubscribed): {short(group)}",
            )
        if _UUID.fullmatch(group["subscription_group_id"]) is None:
            return Violation(
                "invalid_subscription_group_id",
                f"{field}: {short(group['subscription_group_id'])} is not a group id (a UUID)",
            )
        double = group.get("use_double_opt_in_logic")
        if double is not None and type(double) is not bool:
            return Violation(
                "invalid_subscription_groups", f"{field}: use_double_opt_in_logic must be a bool"
            )
    return None


def _ignore(field: str, value: Any) -> Violation | None:
    return None


COMMON_FIELDS: dict[str, Checker] = {
    **IDENTIFIER_FIELDS,
    "_update_existing_only": _flag,
    "app_id": _optional_string,
}

ATTRIBUTE_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "push_token_import": _flag,
    "_merge_objects": _flag,
    "first_name": _optional_string,
    "last_name": _optional_string,
    "home_city": _optional_string,
    "language": _optional_string,
    "time_zone": _optional_string,
    "date_of_first_session": _optional_string,
    "date_of_last_session": _optional_string,
    "marked_email_as_spam_at": _optional_string,
    "image_url": _image_url,
    "gender": _gender,
    "email_subscribe": _subscription,
    "push_subscribe": _subscription,
    "dob": _dob,
    "country": _country,
    "current_location": _location,
    "push_tokens": _push_tokens,
    "subscription_groups": _subscription_groups,
    "email_open_tracking_disabled": _flag,
    "email_click_tracking_disabled": _flag,
    "facebook": _ignore,
    "twitter": _ignore,
}
