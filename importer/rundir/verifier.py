"""Which URL a run read, kept without the URL: a verifier that a URL given again is that one.

run.json shows a source URL that held credentials as ``display_name`` does, every query value
hidden, so ``/dl?id=123&key=K`` and ``/dl?id=456&key=K`` look the same there; and a server may
send neither size nor version, so "the object is unchanged" cannot tell them apart either. A
resume must still refuse the other object's URL. run.json must not hold a credential, not even
as a plain digest (a short password is found from its SHA-256 in seconds), so it holds a salted
slow hash: PBKDF2-HMAC-SHA256 with a random 16-byte salt per entry and enough iterations to cost
~20-50 ms each, which makes guessing a weak password from a copied run.json costly while
checking a few ``--source`` URLs stays instant for a person.

The hash covers the whole URL except the values of parameters that a fresh presigning changes
and that never choose the object (``X-Amz-*``, ``X-Goog-*``, an Azure SAS's and CloudFront's
signing fields): an expired presigned URL, presigned again, names the same object and is
accepted; any other difference (the host, the path, another query value, the password) is not.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

KDF = "pbkdf2-sha256"
ITERATIONS = 60_000  # ~25 ms on the machine this was measured on
SALT_BYTES = 16
# Parameters whose values a new presigning changes (signature, dates, expiry, session token).
_SIGNING_PREFIXES = ("x-amz-", "x-goog-")
_SIGNING_NAMES = frozenset(
    {"sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sip", "skoid", "sktid", "skt", "ske"}
    | {"sks", "skv", "expires", "signature", "key-pair-id", "policy"}
)


def url_verifier(url: str) -> dict[str, Any]:
    """What run.json records of a credentialed source URL instead of the URL."""
    salt = os.urandom(SALT_BYTES)
    return {
        "kdf": KDF,
        "iterations": ITERATIONS,
        "salt": salt.hex(),
        "hash": _derive(url, salt, ITERATIONS).hex(),
    }


def matches(url: str, verifier: dict[str, Any]) -> bool:
    """Whether ``url`` is the URL the verifier was made of (or it presigned again)."""
    if verifier.get("kdf") != KDF:
        return False
    derived = _derive(url, bytes.fromhex(verifier["salt"]), int(verifier["iterations"]))
    return hmac.compare_digest(derived.hex(), verifier["hash"])


def _derive(url: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", _object_part(url).encode(), salt, iterations)


def _object_part(url: str) -> str:
    """The URL without the values of its signing parameters (names and order kept)."""
    before, hash_, fragment = url.partition("#")
    address, question, query = before.partition("?")
    params = [_unsigned(p) for p in query.split("&")] if query else []
    return address + question + "&".join(params) + hash_ + fragment


def _unsigned(param: str) -> str:
    name, equals, _ = param.partition("=")
    lowered = name.lower()
    if lowered.startswith(_SIGNING_PREFIXES) or lowered in _SIGNING_NAMES:
        return name + equals
    return param
