"""Deciding what of an item is new, and the bookkeeping of what is in flight.

The database holds what Braze confirmed. Between ``filter`` and ``confirm`` an object is *in
flight*; a later row of the same run is compared with the in-flight value first, so:

- an order export that repeats the customer's attributes on every order line sends them once;
- the same event twice in one input (same fingerprint) is sent once — two identical events are one
  event, and deduplicating in the run (not only against the database) makes the outcome the same
  however confirmations and batches interleave, so a resume can never deliver it twice either.

If the in-flight object is then refused, its later duplicates were left out too; nothing is
remembered for a refused object, so all of them go out the next night.

Two shortcuts keep the hot path to about one hash per row:

- a user whose attributes object is byte-for-byte the one last confirmed (the stored ``whole``
  digest) is unchanged without a digest per attribute. The stored ``whole`` is kept only while it
  is exact: set when a confirmed object had every other key equal to the database, cleared by any
  other confirmation for that user;
- a user the state has never seen sends everything; what is in flight is kept as the values sent
  (not digests), hashed only if a later row of that user needs the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from importer.models import BrazeObject, Item, RowRef
from importer.state.digest import (
    ALWAYS_KEPT,
    ObjectIdentity,
    decode_values,
    delivered_key,
    event_fingerprint,
    identity_of,
    is_operator,
    purchase_fingerprint,
    value_digest,
    whole_digest,
)
from importer.state.store import UserRow

Occurrence = tuple[str, bytes]  # (user key, fingerprint) of an event or purchase
Prepared = tuple[
    tuple[ObjectIdentity | None, ...],  # per attributes object
    tuple[Occurrence | None, ...],  # per event
    tuple[Occurrence | None, ...],  # per purchase
]
Digests = list[tuple[str, bytes | None]]  # (attribute name, value digest or None for operators)
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class Filtered:
    """What is left of an item to send. ``item`` is None when nothing is (skip as ``unchanged``)."""

    item: Item | None
    attributes_unchanged: int  # attribute keys left out
    events_already_sent: int  # events + purchases left out


def prepare(item: Item) -> Prepared:
    """Everything about an item that needs no database: users and fingerprints."""
    # Comprehensions over tuples and skipped empties: this runs once per row on the hot path.
    attributes, events, purchases = item.attributes, item.events, item.purchases
    return (
        tuple([identity_of(obj) for obj in attributes]) if attributes else (),
        tuple([occurrence(obj, event_fingerprint) for obj in events]) if events else (),
        tuple([occurrence(obj, purchase_fingerprint) for obj in purchases]) if purchases else (),
    )


def occurrence(
    obj: BrazeObject, fingerprint: Callable[[BrazeObject], bytes | None]
) -> Occurrence | None:
    identity = identity_of(obj)
    if identity is None:
        return None
    fp = fingerprint(obj)
    return None if fp is None else (identity[1], fp)


def users_of(prepared: Iterable[Prepared]) -> set[str]:
    users: set[str] = set()
    add = users.add
    for identities, events, purchases in prepared:  # plain loops: cheaper than generators here
        for identity in identities:
            if identity is not None:
                add(identity[1])
        for occ in events:
            if occ is not None:
                add(occ[0])
        for occ in purchases:
            if occ is not None:
                add(occ[0])
    return users


def stored_keys(prepared: Iterable[Prepared], rows: dict[str, UserRow]) -> dict[bytes, Occurrence]:
    """The delivered-table keys to look up: occurrences of users the state knows."""
    wanted: dict[bytes, Occurrence] = {}
    for _, events, purchases in prepared:
        for occs in (events, purchases):
            for occ in occs:
                if occ is not None:
                    row = rows.get(occ[0])
                    if row is not None:
                        wanted[delivered_key(row[0], occ[1])] = occ
    return wanted


def attribute_digests(key: str, obj: BrazeObject) -> Digests:
    return [
        (name, value_digest(value))
        for name, value in obj.items()
        if name != key and name not in ALWAYS_KEPT
    ]


def _attribute_count(obj: BrazeObject) -> int:
    """Keys of an attributes object that are attributes (not the identifier or a flag)."""
    flags = (
        ("_update_existing_only" in obj) + ("_merge_objects" in obj) + ("push_token_import" in obj)
    )
    return len(obj) - 1 - flags


class Delta:
    """The filtering rules, and what this session has sent but not yet seen confirmed."""

    def __init__(self, names: dict[str, int]) -> None:
        self.names = names  # attribute name -> id, as stored
        self.values: dict[str, dict[str, Any]] = {}  # in flight: user -> name -> value sent
        self.wholes: dict[tuple[RowRef, str], bytes] = {}  # whole digests awaiting confirmation
        self.occurrences: set[Occurrence] = set()  # events and purchases in flight
        self.deferred: dict[str, bytes] = {}  # exact whole digests of unchanged users, to store
        self._nothing_left: dict[tuple[int, int], Filtered] = {}  # immutable, so shared

    def decide(
        self, item: Item, prepared: Prepared, rows: dict[str, UserRow], known: set[Occurrence]
    ) -> Filtered:
        identities, event_occs, purchase_occs = prepared
        attributes, unchanged = item.attributes, 0
        if attributes:
            attributes, unchanged = self._attributes_left(item.ref, attributes, identities, rows)
        events, events_dropped = self._objects_left(item.events, event_occs, known)
        purchases, purchases_dropped = self._objects_left(item.purchases, purchase_occs, known)
        dropped = events_dropped + purchases_dropped
        if attributes is item.attributes and not dropped and (attributes or events or purchases):
            return Filtered(item, 0, 0)
        if not (attributes or events or purchases):
            counts = (unchanged, dropped)
            nothing = self._nothing_left.get(counts)
            if nothing is None:
                nothing = self._nothing_left[counts] = Filtered(None, unchanged, dropped)
            return nothing
        left = Item(item.ref, item.record, item.user, attributes, events, purchases)
        return Filtered(left, unchanged, dropped)

    def _objects_left(
        self,
        objects: tuple[BrazeObject, ...],
        occurrences: tuple[Occurrence | None, ...],
        known: set[Occurrence],
    ) -> tuple[tuple[BrazeObject, ...], int]:
        if not objects:
            return objects, 0
        kept: list[BrazeObject] = []
        for obj, occ in zip(objects, occurrences, strict=True):
            if occ is None:
                kept.append(obj)  # cannot be fingerprinted: always sent
            elif occ not in known and occ not in self.occurrences:
                self.occurrences.add(occ)
                kept.append(obj)
        dropped = len(objects) - len(kept)
        return (tuple(kept) if dropped else objects), dropped

    def _attributes_left(
        self,
        ref: RowRef,
        objects: tuple[BrazeObject, ...],
        identities: tuple[ObjectIdentity | None, ...],
        rows: dict[str, UserRow],
    ) -> tuple[tuple[BrazeObject, ...], int]:
        kept: list[BrazeObject] = []
        unchanged = 0
        same = True
        for obj, identity in zip(objects, identities, strict=True):
            if identity is None:
                kept.append(obj)  # names nobody (push-token import): passed through
                continue
            left, dropped = self._object_left(ref, obj, identity, rows.get(identity[1]))
            unchanged += dropped
            same = same and left is obj
            if left is not None:
                kept.append(left)
        return (objects if same else tuple(kept)), unchanged

    def _object_left(
        self, ref: RowRef, obj: BrazeObject, identity: ObjectIdentity, row: UserRow | None
    ) -> tuple[BrazeObject | None, int]:
        key, user = identity
        in_flight = self.values.get(user)
        whole = whole_digest(obj)
        if in_flight is None:
            if row is None:
                return self._new_user(ref, obj, identity, whole), 0
            if whole is not None and row[1] == whole:
                return None, _attribute_count(obj)
        remembered = decode_values(row[2]) if row is not None else {}
        left: BrazeObject = {}
        sent = unchanged = 0
        exact = True  # every value had a digest: the whole digest may be stored
        for name, value in obj.items():
            if name == key or name in ALWAYS_KEPT:
                left[name] = value
                continue
            digest = value_digest(value)
            if digest is not None and self._same(digest, value, name, in_flight, remembered):
                unchanged += 1
                continue
            exact = exact and digest is not None
            left[name] = value
            sent += 1
            self.values.setdefault(user, {})[name] = value
        # The whole digest is exact only if every key left out equals the database's value.
        storable = whole if exact and in_flight is None else None
        if sent:
            if storable is not None:
                self.wholes[ref, user] = storable
            return (obj if not unchanged else left), unchanged
        if storable is not None:
            self.deferred[user] = storable
        return None, unchanged

    def _same(
        self,
        digest: bytes,
        value: Any,
        name: str,
        in_flight: dict[str, Any] | None,
        remembered: dict[int, bytes],
    ) -> bool:
        """Is ``value`` what was last sent (in flight) or else last confirmed for this key?"""
        if in_flight is not None:
            last = in_flight.get(name, _ABSENT)
            if last is not _ABSENT:
                return value is last or digest == value_digest(last)
        name_id = self.names.get(name)
        return name_id is not None and remembered.get(name_id) == digest

    def _new_user(
        self, ref: RowRef, obj: BrazeObject, identity: ObjectIdentity, whole: bytes | None
    ) -> BrazeObject:
        """A user the state never saw: everything is sent, and nothing needs a digest yet."""
        key, user = identity
        values = {name: v for name, v in obj.items() if name != key and name not in ALWAYS_KEPT}
        if values:  # else an identifier only: it creates the profile
            self.values[user] = values
            if whole is not None and not any(map(is_operator, values.values())):
                self.wholes[ref, user] = whole
        return obj

    def settle(
        self, ref: RowRef, user: str, key: str, obj: BrazeObject
    ) -> tuple[Digests, bytes | None]:
        """An attributes object left flight (confirmed or released): forget it as in flight.

        Returns its digests and the whole digest to store (None unless still exact).
        """
        digests = attribute_digests(key, obj)
        in_flight = self.values.get(user)
        if in_flight is not None:
            for name, digest in digests:
                last = in_flight.get(name, _ABSENT)
                if last is not _ABSENT and (last is obj[name] or value_digest(last) == digest):
                    del in_flight[name]
            if not in_flight:
                del self.values[user]
        whole = self.wholes.pop((ref, user), None)
        return digests, (whole if user not in self.values else None)
