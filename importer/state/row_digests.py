"""An item's digests: what the state compares of one row's objects (``digest``: of a value).

``item_digests`` computes everything ``digest`` describes for one item where the item is
made — in a conversion worker process when there are several — so the main process only looks
up and compares. The value digests cost one hash per attribute, most of the work, and a night
where little changed needs few of them (an unchanged user is recognised by its whole digest):
``values=False`` leaves them out, and ``with_values`` adds them to the items that turn out to
need them. Never out of an object carrying an operation (its digests are needed to look it
up), so digests added later never hold one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

from importer.models import BrazeObject, Item
from importer.state.digest import (
    ALWAYS_KEPT,
    BLAKE2B_8,
    IDENTIFIER_OF_TAG,
    OPERATORS,
    UNSET,
    ItemDigests,
    ObjectDigests,
    Occurrence,
    OperationSources,
    ValueDigests,
    event_fingerprint,
    hash8,
    identity_of,
    is_operator,
    operation_digest,
    operation_identity,
    purchase_fingerprint,
    value_digest,
    whole_digest,
)


def item_digests(
    item: Item,
    values: bool = True,
    sources: OperationSources = None,
    fragments: tuple[bytes, ...] | None = None,
) -> ItemDigests:
    """Everything the state compares of an item's objects: pure, so any process can do it.

    ``values=False`` leaves the value digests out (None) of every object, for ``with_values``
    to add if needed: what is looked at first is the whole digest, and one equal to the
    stored one tells that the object carries no operation (none is ever stored whole).
    ``sources``: how rows without an ``[operations] key`` name their operations (None: the
    mapping has none, and no value is looked at as one). ``fragments``: the item's attributes
    objects as JSON, ``orjson.dumps`` of each (a worker sends them: ``send.attributes_json``),
    the very bytes ``whole_digest`` hashes: not made a second time.
    """
    # Comprehensions over tuples and skipped empties: once per row, on every row.
    attributes, events, purchases = _objects(item)
    named = _Named(item, sources) if values and sources is not None else None
    if not attributes:
        objects: tuple[ObjectDigests | None, ...] = ()
    elif fragments is None:
        objects = tuple([object_digests(obj, values, named) for obj in attributes])
    else:
        made = zip(attributes, fragments, strict=True)
        objects = tuple([object_digests(obj, values, named, data) for obj, data in made])
    # The row's user once, not once per object: pickled once, and one string in memory.
    user = objects[0][0] if objects and objects[0] is not None else None
    return (
        objects,
        tuple([occurrence(obj, event_fingerprint, user) for obj in events]) if events else (),
        tuple([occurrence(obj, purchase_fingerprint, user) for obj in purchases])
        if purchases
        else (),
    )


def with_values(item: Item, digests: ItemDigests, sources: OperationSources = None) -> ItemDigests:
    """``digests`` with the value digests ``item_digests(item, values=False)`` left out, its
    operations named as ``item_digests`` names them (an object carrying one loses its whole
    digest: see ``object_digests``). The caller looks their delivered keys up after this."""
    named = None if sources is None else _Named(item, sources)
    objects = tuple(
        obj if obj is None or obj[3] is not None else _valued(obj, attrs, named)
        for obj, attrs in zip(digests[0], _objects(item)[0], strict=True)
    )
    return objects, digests[1], digests[2]


def _valued(obj: ObjectDigests, attrs: BrazeObject, named: _Named | None) -> ObjectDigests:
    """``obj`` (of ``attrs``) with its value digests."""
    user = obj[0]
    digests, operations = _values_named(attrs, IDENTIFIER_OF_TAG[user[0]], named)
    return user, None if operations else obj[1], obj[2], digests


class _Named:
    """The identity of a row's operations (``operation_identity``), made when an object of
    the row turns out to carry one: most rows of a mapping that may carry them carry none."""

    __slots__ = ("_row", "item", "sources")

    def __init__(self, item: Item, sources: Mapping[str, str]) -> None:
        self.item, self.sources = item, sources
        self._row: str | bool | None = False  # False: not made yet

    def row(self) -> str | None:
        if self._row is False:
            self._row = operation_identity(self.item, self.sources)
        return self._row  # type: ignore[return-value]


def _objects(item: Item) -> tuple[tuple[BrazeObject, ...], ...]:
    if item.wire is not None and not (item.attributes or item.events or item.purchases):
        item = item.decoded()  # it carries its objects as JSON only
    return item.attributes, item.events, item.purchases


def object_digests(
    obj: BrazeObject, values: bool = True, named: _Named | None = None, data: bytes | None = None
) -> ObjectDigests | None:
    """``named``: the row's operations' identity, asked for once an operator is found (None:
    operators are values never compared, as when the mapping has no operations). ``data``:
    ``orjson.dumps(obj)`` when made already (see ``item_digests``)."""
    identity = identity_of(obj)
    if identity is None:
        return None
    key, user = identity
    if values:
        digests, operations = _values_named(obj, key, named)
        # No whole digest for one carrying an operation: it must never stand for one, and so
        # a whole digest tells every reader that the object carries none (``operations_of``).
        if operations:
            return user, None, len(digests), digests
        return user, whole_digest(obj) if data is None else hash8(data), len(digests), digests
    flags = (  # ALWAYS_KEPT, spelled out: once per row
        ("_update_existing_only" in obj) + ("_merge_objects" in obj) + ("push_token_import" in obj)
    )
    whole = whole_digest(obj) if data is None else hash8(data)
    return user, whole, len(obj) - 1 - flags, None


def _values_named(obj: BrazeObject, key: str, named: _Named | None) -> tuple[ValueDigests, bool]:
    """The object's value digests, its operations named (``named``); did it carry any?"""
    digests = _value_digests(obj, key)
    # None: an operator, or a value without canonical JSON (rare: checked first).
    if named is not None and None in digests.values():
        row = named.row()
        if row is not None and _name_operations(obj, digests, row):
            return digests, True
    return digests, False


def value_digests(obj: BrazeObject, user: str, row: str | None = None) -> ValueDigests:
    """The value digests of an attributes object of ``user`` (a key from ``identity_of``)."""
    digests = _value_digests(obj, IDENTIFIER_OF_TAG[user[0]])
    if row is not None and None in digests.values():  # row is None: no operation in the mapping
        _name_operations(obj, digests, row)
    return digests


# Repeated values' digests, per attribute name: most of a mapping's attributes take a few
# values (a country, a plan, a flag, a literal), and a digest costs a serialisation and a
# BLAKE2b compression (~3,500 instructions), a look-up ~100. Only str and int keys (never
# bool: True == 1 with another JSON; never float: -0.0 == 0.0 with another JSON), so equal
# keys have equal JSON. At most MEMO_VALUES a name, the first seen, and no str longer than
# MEMO_CHARS (a cell may hold a megabyte): ~50 KB a name at most. At most MEMO_NAMES names,
# the first seen: a JSONL file without a mapping may bring a new one on every line.
MEMO_VALUES = 256
MEMO_CHARS = 64
MEMO_NAMES = 256
_memos: dict[str, dict[str | int, bytes]] = {}
_TRUE, _FALSE = value_digest(True), value_digest(False)
# The keys an object's value digests leave out, per identifier key: it and ALWAYS_KEPT.
_SKIPPED = {key: ALWAYS_KEPT | {key} for key in IDENTIFIER_OF_TAG.values()}


def _value_digests(obj: BrazeObject, key: str) -> ValueDigests:
    """Each value's digest; None for an operator's (see ``_name_operations``)."""
    digests: ValueDigests = {}
    new_hasher, dumps, memos, sort = BLAKE2B_8.copy, orjson.dumps, _memos, orjson.OPT_SORT_KEYS
    skipped = _SKIPPED[key]
    # value_digest, inlined, in opcodes 3.11 specialises (subscripts and ``in``, not calls of
    # dict.get): once per attribute of every row, ~10% less than with them.
    for name, value in obj.items():
        if name in skipped:
            continue
        if value is None:
            digests[name] = UNSET
            continue
        kind = type(value)
        memo = None
        if (kind is str and len(value) <= MEMO_CHARS) or kind is int:
            try:
                memo = memos[name]
            except KeyError:
                memo = _new_memo(name)
            if memo is not None and value in memo:
                digests[name] = memo[value]
                continue
        elif kind is bool:
            digests[name] = _TRUE if value else _FALSE
            continue
        elif kind is dict and not OPERATORS.isdisjoint(value):
            digests[name] = None
            continue
        try:
            data = dumps(value, option=sort)
        except orjson.JSONEncodeError:
            digests[name] = None
            continue
        hasher = new_hasher()
        hasher.update(data)
        digest = digests[name] = hasher.digest()
        if memo is not None and len(memo) < MEMO_VALUES:
            memo[value] = digest
    return digests


def _new_memo(name: str) -> dict[str | int, bytes] | None:
    """A memo for the values of ``name``; None once MEMO_NAMES names have one."""
    if len(_memos) >= MEMO_NAMES:
        return None
    memo: dict[str | int, bytes] = {}
    _memos[name] = memo
    return memo


def _name_operations(obj: BrazeObject, digests: ValueDigests, row: str) -> bool:
    """Give each operator among ``digests`` its operation's digest; were there any?"""
    found = False
    for name, digest in digests.items():
        value = obj[name]
        if digest is None and is_operator(value):
            digests[name] = operation_digest(row, name, value)
            found = True
    return found


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
