"""Braze's rules for reading profiles back with ``POST /users/export/ids``, shared by the
sandbox (which answers it) and ``verify`` (which asks it): docs/braze.md, Exporting profiles.

Times come back in several forms (ISO 8601 with ``Z`` and milliseconds, ``+00:00``, and
``2020-07-10 15:00:00.000 UTC``); ``parse_instant`` reads them all, and the forms the importer
sends (any offset, none meaning UTC, Braze's colon before the milliseconds), as epoch seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

EXPORT_PATH = "/users/export/ids"
MAX_EXPORT_IDS = 50  # external_ids and user_aliases together (per key or in all: unconfirmed)
EVENT_WINDOW_DAYS = 90  # custom_events and purchases cover the last 90 days only
# Standard attributes the export returns under their own name (the rest are not exported).
EXPORTED_STANDARD = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "home_city",
        "phone",
        "dob",
        "country",
        "language",
        "gender",
        "time_zone",
        "email_subscribe",
        "push_subscribe",
    }
)
# The other names fields_to_export takes (docs/braze.md, Exporting profiles).
EXPORT_FIELDS = EXPORTED_STANDARD | {
    "external_id",
    "braze_id",
    "user_aliases",
    "custom_attributes",
    "custom_events",
    "purchases",
    "total_revenue",
    "last_coordinates",
    "created_at",
    "uninstalled_at",
    "random_bucket",
    "attributed_campaign",
    "attributed_source",
    "attributed_adgroup",
    "attributed_ad",
    "apps",
    "devices",
    "push_tokens",
    "campaigns_received",
    "canvases_received",
    "cards_clicked",
}

# A date at the start is what makes a string a time; fromisoformat alone also takes "20200101".
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instant(value: Any) -> float | None:
    """Epoch seconds of a time string in any form Braze takes or returns; None if not one.
    No offset means UTC (docs/braze.md, Event and purchase rules)."""
    if type(value) is not str or not _DATE_START.match(value):
        return None
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4]
    elif len(text) > 20 and text[19] == ":":  # yyyy-MM-dd'T'HH:mm:ss:SSSZ
        text = f"{text[:19]}.{text[20:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def has_time_of_day(value: str) -> bool:
    """A time string that is more than a date (``2024-05-01T10:00Z``, not ``2024-05-01``)."""
    return len(value) > 10 and value[10] in "T "


def braze_time(epoch_s: float) -> str:
    """How the export writes a time: ISO 8601 UTC with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
