"""What the delivery state remembers, reduced to digests.

- A user is the identifier Braze resolves an object by (docs/braze.md, Identifiers): the primary
  identifier (``external_id``, ``user_alias``, ``braze_id``) when there is one, else ``email``,
  else ``phone``. Beside a primary, ``email`` and ``phone`` are ordinary attribute values, so they
  are compared like any other attribute. The user's key is that identifier as text behind a
  one-letter tag (``x`` external_id, ``b`` braze_id, ``a`` alias, ``m`` email, ``p`` phone): the
  text itself, not a hash, so there are no collisions, and a nightly export sorted by customer
  number reads and writes neighbouring pages of the file.
- An attribute value is remembered as 8 bytes of BLAKE2b over its canonical JSON; a digest is
  compared only with the same user's earlier value of the same key, so a false match needs a 2⁻⁶⁴
  accident. ``null`` is remembered as ``UNSET``.
- Operator values (``{"inc": 1}``, ``{"add": [...]}``, ``{"$add": [...]}``, ...) are not values:
  sending one twice changes the profile twice. Delivering one forgets what was remembered for that
  key (its value is no longer known). Each is remembered instead like an event (docs/braze.md,
  Operations on attributes): its "digest" is ``OPERATION`` + an 8-byte fingerprint of its
  identity — the row's ``[operations] key`` cell (``Item.operations``), else the fingerprint
  the run recorded for the row's source (run.json; a bucket object's version; for ``retry`` the
  parent run's: ``OperationSources``) and the line — the attribute name and the operators used,
  stored in the delivered table. A resume, a retry or the same file again finds it there;
  another night's file has another fingerprint (or new keys). The source is never looked at
  again here: a file overwritten since does not change what its rows were. A row with neither
  has no identity: its operations have no digest (None) and are not remembered; the runner
  refuses such a run up front (importer.runner.entry).
- An event or purchase is remembered by an 8-byte fingerprint of its defining fields, stored under
  its user's number: the user is part of the key, so a false "already sent" needs a 2⁻⁶⁴ accident
  among that one user's events.
- The digest of a whole attributes object (8 bytes) recognises an unchanged user with one hash
  instead of one per attribute: the common case of a nightly re-export. It is over the object's
  JSON as made, keys unsorted (``whole_digest``): only a shortcut, so it may change meaning.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from hashlib import blake2b
from operator import countOf
from typing import Any

import orjson

from importer.models import BrazeObject, Item

UNSET = bytes(8)  # the digest of null: the attribute was unset
DIGEST_BYTES = 8
OPERATION = b"o"  # leads the 9-byte "digest" of an operation: its fingerprint follows
USER_NUMBER_BYTES = 5  # big-endian, so a user's events sit together in the delivered table

# Keys that steer how Braze applies an object; kept whenever any attribute of it is sent.
ALWAYS_KEPT = frozenset({"_update_existing_only", "_merge_objects", "push_token_import"})
OPERATORS = frozenset({"inc", "add", "remove", "$add", "$remove", "$update"})
_SORTED = orjson.OPT_SORT_KEYS
_SEP = "\x1f"  # unit separator, between alias label and name
# A fresh 8-byte BLAKE2b state, copied for each digest: the constructor parses its keyword
# arguments on every call, ~40% of hashing a short value; a copy gives the same digest.
BLAKE2B_8 = blake2b(digest_size=DIGEST_BYTES)
IDENTIFIER_OF_TAG = {
    "x": "external_id",
    "b": "braze_id",
    "a": "user_alias",
    "m": "email",
    "p": "phone",
}

ObjectIdentity = tuple[str, str]  # (the key identifying the object, the user's key)
# Source name -> the fingerprint the run recorded for it (run.json); None: the mapping has no
# operations, so nothing is looked for.
OperationSources = Mapping[str, str] | None
Occurrence = tuple[str, bytes]  # (user key, fingerprint) of an event or purchase
# Attribute name -> value digest, for every key of an attributes object but its identifier and
# ALWAYS_KEPT; None for a value that is never compared (an operator, or not canonical JSON).
ValueDigests = dict[str, bytes | None]
# (user key, whole digest, attributes in it, value digests or None: see ``with_values``). The
# whole digest is None when the object carries an operation (or has no canonical JSON).
ObjectDigests = tuple[str, bytes | None, int, "ValueDigests | Packed | None"]
# What the state needs of an item, position by position (picklable: made in worker processes).
ItemDigests = tuple[
    tuple[ObjectDigests | None, ...],  # per attributes object; None: it names nobody
    tuple[Occurrence | None, ...],  # per event; None: it cannot be fingerprinted
    tuple[Occurrence | None, ...],  # per purchase
]


def operation_digest(row: str, name: str, value: dict[str, Any]) -> bytes:
    """``OPERATION`` + the fingerprint of one row's operation on attribute ``name``."""
    data = orjson.dumps(("o", row, name, sorted(value)))
    return OPERATION + hash8(data)


def is_operation(digest: bytes | None) -> bool:
    return digest is not None and len(digest) > DIGEST_BYTES


def operations_of(obj: ObjectDigests) -> list[Occurrence]:
    """The (user, fingerprint) of each operation an attributes object carries."""
    values = obj[3]
    if obj[1] is not None or type(values) is not dict:  # one with an operation has no whole
        return []  # digest, and a packed one (``Packed``) none either
    return [(obj[0], d[1:]) for d in values.values() if d is not None and len(d) > DIGEST_BYTES]


def operation_identity(item: Item, sources: Mapping[str, str]) -> str | None:
    """How the row's operations are named: ``k`` + the ``[operations] key`` cell, else ``f`` +
    the fingerprint the run recorded for its source and the line; None when there is neither."""
    key = item.operations
    if key is not None:
        return f"k{key}"
    found = sources.get(item.ref.source)
    return None if found is None else f"f{found}:{item.ref.line}"


def identity_of(obj: BrazeObject) -> ObjectIdentity | None:
    """Which user an object belongs to, by Braze's resolution rules; None when it names nobody."""
    value = obj.get("external_id")
    if value is not None and value != "":
        return "external_id", f"x{value}"
    value = obj.get("braze_id")
    if value is not None and value != "":
        return "braze_id", f"b{value}"
    alias = obj.get("user_alias")
    if alias is not None:
        if type(alias) is not dict:
            return None
        return "user_alias", f"a{alias.get('alias_label')}{_SEP}{alias.get('alias_name')}"
    value = obj.get("email")
    if value is not None and value != "":
        return "email", f"m{value}"
    value = obj.get("phone")
    if value is not None and value != "":
        return "phone", f"p{value}"
    return None


def delivered_key(user_number: int, fingerprint: bytes) -> bytes:
    return user_number.to_bytes(USER_NUMBER_BYTES, "big") + fingerprint


def is_operator(value: Any) -> bool:
    return type(value) is dict and not OPERATORS.isdisjoint(value)


def value_digest(value: Any) -> bytes | None:
    """The remembered form of an attribute value; None when it cannot be compared (operators)."""
    if value is None:
        return UNSET
    if type(value) is dict and not OPERATORS.isdisjoint(value):  # is_operator, inlined: hot
        return None
    try:
        data = orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:
        return None  # not JSON we can canonicalise (e.g. an int beyond 64 bits): always send
    hasher = BLAKE2B_8.copy()  # hash8, inlined: once per attribute value
    hasher.update(data)
    return hasher.digest()


def whole_digest(obj: BrazeObject) -> bytes | None:
    """One digest of a whole attributes object, identifiers included, over its JSON with the
    keys in the object's own order: the mapping's generated code fixes it, so tomorrow's equal
    object has today's bytes. Sorting the keys cost ~40% of this digest (CRM: 16.3 K against
    9.5 K instructions a row to serialise; the hash ~10 K).

    Only a shortcut, never the record of a value: equal bytes are an equal object, and unequal
    ones only send the object to be compared value by value (``Delta``), which sends nothing
    equal and stores the new whole digest. So an object whose keys came in another order (a
    json cell rewritten, a JSONL record) costs one comparison, and a state file from before
    (whole digests over sorted keys) one slower night, with nothing sent again."""
    try:
        data = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return None
    return hash8(data)  # a worker's wire holds these bytes: it passes them (item_digests)


def event_fingerprint(obj: BrazeObject) -> bytes | None:
    """Name, time and properties; the user is part of the stored key."""
    return _fingerprint(("e", obj.get("name"), obj.get("time"), obj.get("properties") or {}))


def purchase_fingerprint(obj: BrazeObject) -> bytes | None:
    fields = (
        "p",
        obj.get("product_id"),
        obj.get("time"),
        obj.get("properties") or {},
        obj.get("price"),
        obj.get("currency"),
        obj.get("quantity", 1),  # Braze's default: an absent quantity is one
    )
    return _fingerprint(fields)


def _fingerprint(fields: tuple[Any, ...]) -> bytes | None:
    try:
        data = orjson.dumps(fields, option=_SORTED)
    except orjson.JSONEncodeError:
        return None  # cannot be fingerprinted: always sent, never remembered
    return hash8(data)


def hash8(data: bytes) -> bytes:
    """``blake2b(data, digest_size=8).digest()``, from a copied state (see ``BLAKE2B_8``)."""
    hasher = BLAKE2B_8.copy()
    hasher.update(data)
    return hasher.digest()


# --- one user's remembered attribute digests, packed in one blob --------------------------------
# 12 bytes per attribute: the attribute name's id (names table) and the value digest.

_ENTRY = struct.Struct("<I8s")
ENTRY_BYTES = _ENTRY.size


def decode_values(blob: bytes | None) -> dict[int, bytes]:
    if not blob:
        return {}
    return dict(_ENTRY.iter_unpack(blob))


def encode_pairs(name_ids: Iterable[int], digests: Iterable[bytes | None]) -> bytes:
    """``encode_values`` of (id, digest) pairs, none of them None."""
    return b"".join(map(_ENTRY.pack, name_ids, digests))


def encode_values(values: dict[int, bytes]) -> bytes:
    pack = _ENTRY.pack
    return b"".join([pack(name_id, digest) for name_id, digest in values.items()])


class Packed:
    """A new user's value digests while in flight: the users-table blob they will be recorded
    as (``encode_pairs``, 12 bytes an attribute) and how many of them are ``UNSET``. Taken for
    the row's dict as it goes in flight (``Delta.decide``) when every value is a plain digest
    under a stored name: a CRM row's 22 took ~2 KB as a dict of bytes, ~350 bytes so, and a
    first night's rows in flight are almost all new users. Never holds an operation."""

    __slots__ = ("blob", "unset")

    def __init__(self, blob: bytes, unset: int) -> None:
        self.blob, self.unset = blob, unset

    def __len__(self) -> int:
        return len(self.blob) // _ENTRY.size

    def __eq__(self, other: object) -> bool:  # as the dicts they stand for compare
        return isinstance(other, Packed) and (self.blob, self.unset) == (other.blob, other.unset)

    def __repr__(self) -> str:
        return f"Packed({self.blob!r}, {self.unset})"

    def __reduce__(self) -> tuple[type[Packed], tuple[bytes, int]]:
        return Packed, (self.blob, self.unset)  # a worker's (snapshot.new_packed): two fields

    def by_name(self, names: dict[str, int]) -> ValueDigests:
        """The dict it was packed from; ``names``: name -> id, as stored."""
        ids = {name_id: name for name, name_id in names.items()}
        return {ids[name_id]: digest for name_id, digest in _ENTRY.iter_unpack(self.blob)}


def packed(values: ValueDigests, names: dict[str, int]) -> Packed | None:
    """The value digests of an object with a whole digest (so without an operation: none is
    longer than 8 bytes) packed; None when one has no digest (struct refuses None) or a name
    is not stored yet (a fresh file's first rows)."""
    try:
        blob = encode_pairs(map(names.__getitem__, values), values.values())
    except (KeyError, struct.error):
        return None
    return Packed(blob, countOf(values.values(), UNSET))
