"""Braze's rules for the identifiers every object carries (docs/braze.md, Identifiers): which
may stand together, and one small checker per identifier field.
"""

from __future__ import annotations

import re
from typing import Any

from importer.models import BrazeObject
from importer.rules.violation import Checker, Violation, short, utf8_len_over

MAX_EXTERNAL_ID_BYTES = 987
MAX_ALIAS_PART_BYTES = 236
PRIMARY_IDENTIFIERS = ("external_id", "user_alias", "braze_id")
# The keys an object may name its user by, in the order a user key takes them (``user_key``).
USER_IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")

# Deliberately simple: one @, no spaces, a dotted domain whose last label has 2+ characters.
_EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")
# Loose: digits with the usual separators, optional leading +, at least 3 digits in all.
_PHONE = re.compile(r"\+?[0-9(][0-9 ()./-]*")
# The same and the 3 digits in one match (a lookahead): a good number costs one call.
_GOOD_PHONE = re.compile(r"(?=(?:[^0-9]*[0-9]){3})\+?[0-9(][0-9 ()./-]*")


def check_identifiers(array: str, obj: BrazeObject) -> Violation | None:
    if "external_id" in obj and "user_alias" not in obj and "braze_id" not in obj:
        return None  # the common case, decided without building a list
    primaries = [key for key in PRIMARY_IDENTIFIERS if key in obj]
    if not primaries:
        if "email" in obj or "phone" in obj:
            if obj.get("email") is None and obj.get("phone") is None:
                return Violation("missing_identifier", "email/phone is null and no other id")
            return None
        if array == "attributes" and obj.get("push_token_import") is True:
            return None
        return Violation(
            "missing_identifier",
            "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
        )
    if "external_id" in obj and "user_alias" in obj:
        return Violation("external_id_with_alias", "external_id and user_alias together")
    if len(primaries) > 1:
        return Violation(
            "multiple_identifiers", f"more than one primary id: {', '.join(primaries)}"
        )
    return None


def _external_id(field: str, value: Any) -> Violation | None:
    if type(value) is not str or not value:
        return Violation("invalid_external_id", f"{field} must be a non-empty string")
    if utf8_len_over(value, MAX_EXTERNAL_ID_BYTES):
        return Violation("external_id_too_long", f"{field} exceeds {MAX_EXTERNAL_ID_BYTES} bytes")
    return None


def _braze_id(field: str, value: Any) -> Violation | None:
    if type(value) is not str or not value:
        return Violation("invalid_braze_id", f"{field} must be a non-empty string")
    return None


def _user_alias(field: str, value: Any) -> Violation | None:
    if type(value) is not dict:
        return Violation("invalid_user_alias", f"{field} must be an object")
    for part in ("alias_name", "alias_label"):
        text = value.get(part)
        if type(text) is not str or not text:
            return Violation("invalid_user_alias", f"{field}.{part} must be a non-empty string")
        if utf8_len_over(text, MAX_ALIAS_PART_BYTES):
            return Violation(
                "invalid_user_alias", f"{field}.{part} exceeds {MAX_ALIAS_PART_BYTES} bytes"
            )
    return None


def _email(field: str, value: Any) -> Violation | None:
    if value is None:  # unsets the attribute; identifier presence was checked before
        return None
    if type(value) is not str or _EMAIL.fullmatch(value) is None:
        return Violation("invalid_email", f"{field} is not a valid email: {short(value)}")
    return None


def _phone(field: str, value: Any) -> Violation | None:
    if value is None:
        return None
    if type(value) is str and len(value) <= 40 and _GOOD_PHONE.fullmatch(value) is not None:
        return None
    if type(value) is not str or _PHONE.fullmatch(value) is None or len(value) > 40:
        return Violation("invalid_phone", f"{field} is not a valid phone number: {short(value)}")
    if sum(map(str.isdigit, value)) < 3:
        return Violation("invalid_phone", f"{field} has fewer than 3 digits")
    return None


IDENTIFIER_FIELDS: dict[str, Checker] = {
    "external_id": _external_id,
    "braze_id": _braze_id,
    "user_alias": _user_alias,
    "email": _email,
    "phone": _phone,
}


def user_key(obj: BrazeObject) -> str | None:
    """The key of the user an object names (``kind:value``), as ``Item.user`` holds it; None
    when it names none."""
    for key in USER_IDENTIFIERS:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if key == "user_alias" and type(value) is dict:
            return f"user_alias:{value.get('alias_label')}:{value.get('alias_name')}"
        return f"{key}:{value}"
    return None
