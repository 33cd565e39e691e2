"""Braze's rules for the objects of ``/users/track``, shared by the converter and the sandbox
(docs/braze.md, Identifiers, Attribute rules, Event and purchase rules).

``violation`` says what a broken rule is; ``identifiers`` holds the rules of identifiers,
``user_fields`` those of standard attributes, ``objects`` those of events and purchases and the
check of a whole object; ``profile`` how an attribute changes a stored profile and ``export``
the rules of ``/users/export/ids`` (the sandbox and ``verify``).
"""

from importer.rules.export import (
    EVENT_WINDOW_DAYS,
    EXPORT_FIELDS,
    EXPORT_PATH,
    EXPORTED_STANDARD,
    MAX_EXPORT_IDS,
    braze_time,
    has_time_of_day,
    parse_instant,
)
from importer.rules.identifiers import MAX_EXTERNAL_ID_BYTES, USER_IDENTIFIERS, user_key
from importer.rules.objects import check_object, checker_for
from importer.rules.profile import (
    MAX_ARRAY_ITEMS,
    apply_attribute,
    combine_attributes,
    operation_of,
)
from importer.rules.user_fields import ATTRIBUTE_FIELDS, MAX_IMAGE_URL_CHARS, MAX_STRING_CHARS
from importer.rules.violation import Checker, Violation

__all__ = [
    "ATTRIBUTE_FIELDS",
    "EVENT_WINDOW_DAYS",
    "EXPORTED_STANDARD",
    "EXPORT_FIELDS",
    "EXPORT_PATH",
    "MAX_ARRAY_ITEMS",
    "MAX_EXPORT_IDS",
    "MAX_EXTERNAL_ID_BYTES",
    "MAX_IMAGE_URL_CHARS",
    "MAX_STRING_CHARS",
    "USER_IDENTIFIERS",
    "Checker",
    "Violation",
    "apply_attribute",
    "braze_time",
    "check_object",
    "checker_for",
    "combine_attributes",
    "has_time_of_day",
    "operation_of",
    "parse_instant",
    "user_key",
]
