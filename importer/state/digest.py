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
  instead of one per attribute: the common case of a nightly re-export.

``item_digests`` computes all of that for one item where the item is made — in a conversion
worker process when there are several — so the main process only looks up and compares. The
value digests cost one hash per attribute, most of the work, and a night where little changed
needs few of them (an unchanged user is recognised by its whole digest): ``values=False`` leaves
them out, and ``with_values`` adds them to the items that turn out to need them. Never out of an
object carrying an operation (its digests are needed to look it up), so digests added later
never hold one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from hashlib import blake2b
from typing import Any

import orjson

from importer.models import BrazeObject, Item

UNSET = bytes(8)  # the digest of null: the attribute was unset
DIGEST_BYTES = 8
OPERATION = b"o"  # leads the 9-byte "digest" of an operation: its fingerprint follows
USER_NUMBER_BYTES = 5  # big-endian, so a user's events sit together in the delivered table

# Keys that steer how Braze applies an object; kept whenever any attribute of it is sent.
ALWAYS_KEPT = frozenset({"_update_existing_only", "_merge_objects", "push_token_import"})
_OPERATORS = frozenset({"inc", "add", "remove", "$add", "$remove", "$update"})
_SORTED = orjson.OPT_SORT_KEYS
_SEP = "\x1f"  # unit separator, between alias label and name
# A fresh 8-byte BLAKE2b state, copied for each digest: the constructor parses its keyword
# arguments on every call, ~40% of hashing a short value; a copy gives the same digest.
_BLAKE2B_8 = blake2b(digest_size=DIGEST_BYTES)
_IDENTIFIER_OF_TAG = {
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
ObjectDigests = tuple[str, bytes | None, int, ValueDigests | None]
# What the state needs of an item, position by position (picklable: made in worker processes).
ItemDigests = tuple[
    tuple[ObjectDigests | None, ...],  # per attributes object; None: it names nobody
    tuple[Occurrence | None, ...],  # per event; None: it cannot be fingerprinted
    tuple[Occurrence | None, ...],  # per purchase
]


def item_digests(item: Item, values: bool = True, sources: OperationSources = None) -> ItemDigests:
    """Everything the state compares of an item's objects: pure, so any process can do it.

    ``values=False`` leaves the value digests out (None) of every object that carries no
    operation, for ``with_values`` to add if needed.
    ``sources``: how rows without an ``[operations] key`` name their operations (None: the
    mapping has none, and no value is looked at as one).
    """
    # Comprehensions over tuples and skipped empties: once per row, on every row.
    attributes, events, purchases = _objects(item)
    # Named only when there is something to name: a mapping with a json field "may carry"
    # operations, and few rows do.
    row = None
    if sources is not None and attributes and _carries_operator(attributes):
        row = operation_identity(item, sources)
    objects = tuple([object_digests(obj, values, row) for obj in attributes]) if attributes else ()
    # The row's user once, not once per object: pickled once, and one string in memory.
    user = objects[0][0] if objects and objects[0] is not None else None
    return (
        objects,
        tuple([occurrence(obj, event_fingerprint, user) for obj in events]) if events else (),
        tuple([occurrence(obj, purchase_fingerprint, user) for obj in purchases])
        if purchases
        else (),
    )


def with_values(item: Item, digests: ItemDigests) -> ItemDigests:
    """``digests`` with the value digests ``item_digests(item, values=False)`` left out: never
    an operation's (``item_digests``), so the row needs no name and the whole digests stay
    true to ``operations_of``."""
    objects = tuple(
        obj if obj is None or obj[3] is not None else (*obj[:3], value_digests(attrs, obj[0]))
        for obj, attrs in zip(digests[0], _objects(item)[0], strict=True)
    )
    return objects, digests[1], digests[2]


def _objects(item: Item) -> tuple[tuple[BrazeObject, ...], ...]:
    if item.wire is not None and not (item.attributes or item.events or item.purchases):
        item = item.decoded()  # it carries its objects as JSON only
    return item.attributes, item.events, item.purchases


def object_digests(
    obj: BrazeObject, values: bool = True, row: str | None = None
) -> ObjectDigests | None:
    """``row``: the identity of the row's operations (``operation_identity``); None: the row
    has none."""
    identity = identity_of(obj)
    if identity is None:
        return None
    key, user = identity
    # An object of a row with an operation always comes with its value digests: operations
    # are value digests, looked up in the delivered table for a whole chunk at once. Only
    # then: on a night where little changed, hashing every value of every row for a mapping
    # that "may carry" operations cost the workers more than the rest of a row.
    if values or row is not None:
        digests = _value_digests(obj, key)
        if row is not None and None in digests.values() and _name_operations(obj, digests, row):
            # No whole digest: it must never stand for an operation, and so a whole digest
            # tells every reader that the object carries none (``operations_of``).
            return user, None, len(digests), digests
        return user, whole_digest(obj), len(digests), digests
    flags = (  # ALWAYS_KEPT, spelled out: once per row
        ("_update_existing_only" in obj) + ("_merge_objects" in obj) + ("push_token_import" in obj)
    )
    return user, whole_digest(obj), len(obj) - 1 - flags, None


def _carries_operator(objects: tuple[BrazeObject, ...]) -> bool:
    """Does any of these objects hold an operator value (``is_operator``)?"""
    for obj in objects:
        for value in obj.values():  # a plain loop: faster than filter or map here
            if type(value) is dict and not _OPERATORS.isdisjoint(value):
                return True
    return False


def value_digests(obj: BrazeObject, user: str, row: str | None = None) -> ValueDigests:
    """The value digests of an attributes object of ``user`` (a key from ``identity_of``)."""
    digests = _value_digests(obj, _IDENTIFIER_OF_TAG[user[0]])
    if row is not None and None in digests.values():  # row is None: no operation in the mapping
        _name_operations(obj, digests, row)
    return digests


def _value_digests(obj: BrazeObject, key: str) -> ValueDigests:
    """Each value's digest; None for an operator's (see ``_name_operations``)."""
    digests: ValueDigests = {}
    new_hasher, dumps = _BLAKE2B_8.copy, orjson.dumps
    for name, value in obj.items():  # value_digest, inlined: once per attribute of every row
        if name == key or name in ALWAYS_KEPT:
            continue
        if value is None:
            digests[name] = UNSET
            continue
        if type(value) is dict and not _OPERATORS.isdisjoint(value):
            digests[name] = None
            continue
        try:
            data = dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:
            digests[name] = None
            continue
        hasher = new_hasher()
        hasher.update(data)
        digests[name] = hasher.digest()
    return digests


def _name_operations(obj: BrazeObject, digests: ValueDigests, row: str) -> bool:
    """Give each operator among ``digests`` its operation's digest; were there any?"""
    found = False
    for name, digest in digests.items():
        value = obj[name]
        if digest is None and is_operator(value):
            digests[name] = operation_digest(row, name, value)
            found = True
    return found


def operation_digest(row: str, name: str, value: dict[str, Any]) -> bytes:
    """``OPERATION`` + the fingerprint of one row's operation on attribute ``name``."""
    data = orjson.dumps(("o", row, name, sorted(value)))
    return OPERATION + _hash8(data)


def is_operation(digest: bytes | None) -> bool:
    return digest is not None and len(digest) > DIGEST_BYTES


def operations_of(obj: ObjectDigests) -> list[Occurrence]:
    """The (user, fingerprint) of each operation an attributes object carries."""
    values = obj[3]
    if not values or obj[1] is not None:  # one with an operation has no whole digest
        return []
    return [(obj[0], d[1:]) for d in values.values() if d is not None and len(d) > DIGEST_BYTES]


def operation_identity(item: Item, sources: Mapping[str, str]) -> str | None:
    """How the row's operations are named: ``k`` + the ``[operations] key`` cell, else ``f`` +
    the fingerprint the run recorded for its source and the line; None when there is neither."""
    key = item.operations
    if key is not None:
        return f"k{key}"
    found = sources.get(item.ref.source)
    return None if found is None else f"f{found}:{item.ref.line}"


def occurrence(
    obj: BrazeObject, fingerprint: Callable[[BrazeObject], bytes | None], user: str | None = None
) -> Occurrence | None:
    """The event's or purchase's (user, fingerprint); ``user`` when it is that user."""
    identity = identity_of(obj)
    if identity is None:
        return None
    fp = fingerprint(obj)
    if fp is None:
        return None
    return (user if identity[1] == user else identity[1]), fp


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
    return type(value) is dict and not _OPERATORS.isdisjoint(value)


def value_digest(value: Any) -> bytes | None:
    """The remembered form of an attribute value; None when it cannot be compared (operators)."""
    if value is None:
        return UNSET
    if type(value) is dict and not _OPERATORS.isdisjoint(value):  # is_operator, inlined: hot
        return None
    try:
        data = orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:
        return None  # not JSON we can canonicalise (e.g. an int beyond 64 bits): always send
    hasher = _BLAKE2B_8.copy()  # _hash8, inlined: once per attribute value
    hasher.update(data)
    return hasher.digest()


def whole_digest(obj: BrazeObject) -> bytes | None:
    """One digest of a whole attributes object, identifiers included."""
    try:
        data = orjson.dumps(obj, option=_SORTED)
    except orjson.JSONEncodeError:
        return None
    return _hash8(data)


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
    return _hash8(data)


def _hash8(data: bytes) -> bytes:
    """``blake2b(data, digest_size=8).digest()``, from a copied state (see ``_BLAKE2B_8``)."""
    hasher = _BLAKE2B_8.copy()
    hasher.update(data)
    return hasher.digest()


# --- one user's remembered attribute digests, packed in one blob --------------------------------
# 12 bytes per attribute: the attribute name's id (names table) and the value digest.

_ENTRY = struct.Struct("<I8s")


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
