"""Sending: ``Item`` -> ``Batch`` -> HTTP -> ``BatchResult``.

``packer`` groups whole rows into requests within Braze's limits (``item_json`` serialises a
row's objects, ``open_request`` joins a full request's into its body); ``user_order`` keeps one
user's requests in order; ``pacer`` and ``rate_control`` keep the pace the rate limit allows;
``client`` sends one request and says what the answer means; ``sender`` retries, splits and
maps Braze's answer back to rows. Only this stage is async.
"""

from importer.send.client import REDACTED, Answer, BrazeClient, classify, redact
from importer.send.item_json import attributes_json, serialised, wire_of
from importer.send.pacer import Pacer
from importer.send.packer import pack
from importer.send.sender import BatchResult, Sender, backoff_s
from importer.send.user_order import UserOrder

__all__ = [
    "REDACTED",
    "Answer",
    "BatchResult",
    "BrazeClient",
    "Pacer",
    "Sender",
    "UserOrder",
    "attributes_json",
    "backoff_s",
    "classify",
    "pack",
    "redact",
    "serialised",
    "wire_of",
]
