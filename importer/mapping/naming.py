"""Attribute names for ``init-mapping``: Braze-friendly snake_case keys, the standard attributes a
column fits, and the words a legacy gender or state column holds.

``Loyalty Points`` and ``LoyaltyPoints`` become ``loyalty_points``; ``Straße`` becomes
``strasse``. A standard attribute (``dob``, ``email``, ``gender``, ``country`` …) is taken only
when the column's values are what Braze takes there; otherwise the column stays a custom
attribute under a name that cannot be mistaken for the standard one (docs/braze.md, Standard
attributes).
"""

from __future__ import annotations

import re
import unicodedata

from importer.mapping.guess import Guess

STANDARD: dict[str, tuple[str, ...]] = {
    "first_name": (
        "first_name",
        "firstname",
        "fname",
        "given_name",
        "forename",
        "vorname",
        "prenom",
    ),
    "last_name": ("last_name", "lastname", "lname", "surname", "family_name", "nachname", "nom"),
    "email": (
        *("email", "e_mail", "email_address", "emailaddress", "mail", "e_mail_address"),
        *("e_mail_adresse", "adresse_e_mail", "adresse_email", "courriel"),
    ),
    "phone": (
        *("phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "mobile_number"),
        *("telephone", "telefon", "handy", "mobil", "mobilnummer", "telefonnummer", "cell"),
    ),
    "dob": (
        *("dob", "birthday", "birth_date", "birthdate", "date_of_birth", "geburtsdatum"),
        *("geburtstag", "date_naissance", "date_de_naissance"),
    ),
    "gender": ("gender", "sex", "geschlecht", "sexe", "genre", "anrede_geschlecht"),
    "country": ("country", "country_code", "land", "pays", "countrycode"),
    "home_city": ("city", "home_city", "town", "stadt", "ort", "wohnort", "ville"),
    "language": ("language", "lang", "sprache", "langue", "language_code"),
    "time_zone": ("time_zone", "timezone", "tz", "zeitzone"),
}
# What a custom attribute is called when its column is named like a standard attribute whose
# values it does not hold (country "Deutschland" rather than "DE").
NOT_STANDARD = {"country": "country_name", "language": "language_name"}
# Keys with a meaning in an attributes object: a custom column may not take them.
RESERVED = frozenset(
    {
        *STANDARD,
        *("external_id", "braze_id", "user_alias", "app_id", "push_token_import"),
        *("_update_existing_only", "_merge_objects", "email_subscribe", "push_subscribe"),
        *("subscription_groups", "push_tokens", "current_location", "image_url", "bio"),
        *("date_of_first_session", "date_of_last_session", "marked_email_as_spam_at"),
        *("email_open_tracking_disabled", "email_click_tracking_disabled"),
        *("facebook", "twitter"),
    }
)
GENDER_CODES = frozenset("MFONP")  # docs/braze.md, Standard attributes: unknown is null
GENDER_WORDS = {
    **dict.fromkeys(
        ("m", "male", "man", "mann", "männlich", "maennlich", "herr", "mr", "h", "homme"), "M"
    ),
    **dict.fromkeys(("f", "w", "female", "woman", "frau", "weiblich", "mrs", "ms", "femme"), "F"),
    **dict.fromkeys(("o", "d", "x", "other", "diverse", "divers", "non-binary"), "O"),
    **dict.fromkeys(("n", "not applicable", "n/a"), "N"),
    **dict.fromkeys(("p", "prefer not to say", "keine angabe"), "P"),
    # Braze has no "unknown": such cells count as empty (nothing sent), like a blank cell.
    **dict.fromkeys(("u", "unknown", "unbekannt", "?", "-"), ""),
}
_SPELLED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``Loyalty Points`` / ``LoyaltyPoints`` / ``E-Mail`` -> ``loyalty_points`` / ``e_mail``;
    letters outside ASCII are spelled out (``Straße`` -> ``strasse``) or lose their accents."""
    text = name.translate(_SPELLED).replace("Ü", "Ue")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _CAMEL.sub("_", text)
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def standard_for(key: str) -> str | None:
    """The standard attribute a column named ``key`` (snake_case) is named like."""
    return next((std for std, names in STANDARD.items() if key in names), None)


def fits_standard(standard: str, guess: Guess) -> bool:
    """Whether the values (as guessed) are what Braze takes for ``standard``."""
    seen = guess.distinct
    if standard == "dob":
        return guess.type in ("date", "time")
    if standard == "email":
        return guess.looks == "email"
    if standard == "country":
        return guess.type == "string" and seen is not None and all(_code(v, 2) for v in seen)
    if standard == "language":
        return guess.type == "string" and seen is not None and all(_code(v, 2) for v in seen)
    if standard == "gender":
        return seen is not None and gender_map(seen) is not None
    if standard == "phone":
        return guess.type in ("string", "integer")
    return guess.type == "string"


def _code(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isalpha()


def gender_map(seen: tuple[str, ...]) -> dict[str, str] | None:
    """The map from the words seen to Braze's codes; {} when they are codes already; None when
    some word is not known."""
    if set(seen) <= GENDER_CODES:
        return {}
    codes = {value: GENDER_WORDS.get(value.casefold()) for value in seen}
    if any(code is None for code in codes.values()):
        return None
    return {value: code for value, code in codes.items() if code is not None}


def unique_key(key: str, taken: set[str]) -> str:
    """A custom attribute's key: ``key``, renamed when Braze gives it a meaning of its own
    (``country`` -> ``country_name``, ``email`` -> ``legacy_email``), then ``key_2``, ``key_3``
    … when a column before it took that name."""
    if key in RESERVED:
        key = NOT_STANDARD.get(key, f"legacy_{key}")
    candidate, n = key or "column", 1
    while candidate in taken:
        n += 1
        candidate = f"{key}_{n}"
    taken.add(candidate)
    return candidate
