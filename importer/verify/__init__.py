"""Proof of landing: read a run's users back from Braze and compare, field by field.

``expected`` works out what each user's profile should hold from the rows the run delivered
(for a reproducible sample, or every user); ``fetch`` asks ``POST /users/export/ids`` for them
with the importer's client, pacer and retry rules; ``compare`` judges one user; ``report`` is
the outcome and its files (verify.jsonl, verify.json); ``entry`` holds ``verify_run``.
"""

from importer.verify.compare import Mismatch
from importer.verify.entry import DEFAULT_RATE, DEFAULT_SAMPLE, DEFAULT_SETTLE_S, verify_run
from importer.verify.report import VerifyReport, VerifyReporter

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_SAMPLE",
    "DEFAULT_SETTLE_S",
    "Mismatch",
    "VerifyReport",
    "VerifyReporter",
    "verify_run",
]
