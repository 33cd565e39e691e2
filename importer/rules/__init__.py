"""Braze's rules for the objects of ``/users/track``, shared by the converter and the sandbox
(docs/braze.md, Identifiers, Attribute rules, Event and purchase rules).

``user_fields`` holds the rules of identifiers and standard attributes, ``objects`` those of
events and purchases and the check of a whole object.
"""

from importer.rules.objects import check_object, checker_for
from importer.rules.user_fields import (
    ATTRIBUTE_FIELDS,
    MAX_EXTERNAL_ID_BYTES,
    MAX_IMAGE_URL_CHARS,
    MAX_STRING_CHARS,
    Checker,
    Violation,
)

__all__ = [
    "ATTRIBUTE_FIELDS",
    "MAX_EXTERNAL_ID_BYTES",
    "MAX_IMAGE_URL_CHARS",
    "MAX_STRING_CHARS",
    "Checker",
    "Violation",
    "check_object",
    "checker_for",
]
