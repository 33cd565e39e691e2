"""Deciding what of an item is new: against what Braze confirmed (the database) and, first,
against what this run has sent but not yet seen confirmed (``in_flight``).

Everything is decided on the item's digests (``digest.item_digests``, usually computed in a
conversion worker), never on its objects: an item from a worker carries its objects as JSON, and
only one that must be narrowed is decoded. Two shortcuts keep the rest cheap:

- a user whose attributes object is byte-for-byte the one last confirmed (the stored ``whole``
  digest) is unchanged without a look at its attributes. The stored ``whole`` is kept only while
  it is exact: set when a confirmed object had every other key equal to the database, cleared by
  any other confirmation for that user;
- a user the state has never seen sends everything, and its value digests go in flight as they
  are (one dict copy).
"""

from __future__ import annotations

from importer.models import Item, RowRef
from importer.state.digest import (
    DIGEST_BYTES,
    ItemDigests,
    ObjectDigests,
    Occurrence,
    Packed,
    ValueDigests,
    decode_values,
    operations_of,
    packed,
)
from importer.state.filtered import Filtered, Positions, Sent, kept_positions, narrowed_item
from importer.state.in_flight import InFlight
from importer.state.snapshot import all_known
from importer.state.store import UserRow, Whole

_new = tuple.__new__


class Delta(InFlight):
    """The filtering rules; what they put in flight is kept by ``InFlight``."""

    def __init__(self, names: dict[str, int]) -> None:
        super().__init__(names)
        # Exact whole digests of unchanged users, to store, with the row key found with them.
        self.deferred: dict[str, Whole] = {}
        self._nothings: dict[tuple[int, int], Filtered] = {}  # immutable, so shared
        self.operations = False  # does the mapping send operations? (else none is looked for)
        # This run's rows with keyed operations, by operation: a later row with the same one
        # (the same [operations] key) is a data error, not a delivery. ~100 bytes per such row;
        # rows named by fingerprint and line can never repeat one, so they are not kept.
        self.operation_rows: dict[Occurrence, RowRef] = {}
        self._keyed = False  # is the row ``decide`` looks at named by an [operations] key?
        self._operations_left_out = 0  # by the current ``decide``
        self._seen = self._compared = 0  # attributes objects, and those compared by value

    def needs_values(self, digests: ItemDigests, rows: dict[str, UserRow]) -> bool:
        """Is this item compared attribute by attribute (a user new, in flight or changed), so
        that ``decide`` needs its value digests?"""
        for obj in digests[0]:
            if obj is not None:
                user, whole = obj[0], obj[1]
                row = rows.get(user)
                if row is None or whole is None or row[1] != whole or user in self.values:
                    return True
        return False

    def unchanged(
        self, digests: ItemDigests, rows: dict[str, UserRow], known: set[Occurrence]
    ) -> Filtered | None:
        """``decide``'s answer for an item with nothing new, in one pass; None for any other."""
        objects, events, purchases = digests
        attributes = 0
        for obj in objects:
            if obj is None:
                return None
            user, whole = obj[0], obj[1]
            row = rows.get(user)
            if row is None or whole is None or row[1] != whole or user in self.values:
                return None
            attributes += obj[2]
        if not all_known(digests, known):
            return None
        self._seen += len(objects)
        return self._nothing_left(attributes, len(events) + len(purchases))

    def vouched(self, verdict: tuple[int, int, int, tuple[str, ...]]) -> Filtered:
        """``unchanged``'s answer for a row a worker found unchanged (``snapshot.Verdict``),
        once its users were found out of flight and unwritten since its snapshot."""
        self._seen += len(verdict[3])
        return self._nothing_left(verdict[1], verdict[2])

    def compared_share(self) -> float:
        """The share of attributes objects decided since the last call that needed their
        value digests (1 when there were none)."""
        share = self._compared / self._seen if self._seen else 1.0
        self._seen = self._compared = 0
        return share

    def decide(
        self, item: Item, digests: ItemDigests, rows: dict[str, UserRow], known: set[Occurrence]
    ) -> Filtered:
        """What is left of ``item``; its value digests must be there if ``needs_values``."""
        objects, event_occs, purchase_occs = digests
        sent: list[Sent] | None = None
        unchanged = 0
        if self.operations and objects:
            self._keyed = item.operations is not None
            earlier = self._repeated(item.ref, objects) if self._keyed else None
            if earlier is not None:
                return Filtered(None, 0, 0, repeats=earlier)
            self._operations_left_out = 0
        if objects:
            sent, unchanged = self._attributes_left(item.ref, objects, rows, known)
        events = self._kept(event_occs, known) if event_occs else None
        purchases = self._kept(purchase_occs, known) if purchase_occs else None
        if sent is None and events is None and purchases is None:
            if not (objects or event_occs or purchase_occs):
                return self._nothing_left(0, 0)
            digests = self._packed(digests)
            if item.digests is not digests:  # made or packed here: the packer keeps them
                item = _new(Item, (*item[:6], digests, *item[7:]))  # Item._replace, no frames
            return Filtered(item, 0, 0)
        attributes_left = len(objects) if sent is None else len(sent) - sent.count(())
        events_left = len(event_occs) if events is None else len(events)
        purchases_left = len(purchase_occs) if purchases is None else len(purchases)
        dropped = len(event_occs) - events_left + len(purchase_occs) - purchases_left
        operations = self._operations_left_out if self.operations else 0
        if operations:  # not "unchanged": that very operation was delivered
            unchanged -= operations
            if not (attributes_left or events_left or purchases_left):
                return Filtered(None, unchanged, dropped, operations)
        if not (attributes_left or events_left or purchases_left):
            return self._nothing_left(unchanged, dropped)
        kept = kept_positions(objects, sent, event_occs, events, purchase_occs, purchases)
        return Filtered(narrowed_item(item, digests, sent, kept), unchanged, dropped, operations)

    def _packed(self, digests: ItemDigests) -> ItemDigests:
        """``digests`` with a new user's value digests ``Packed``, in flight too, when its row
        is one attributes object with a whole digest, sent whole (a first night's rows)."""
        objects = digests[0]
        if len(objects) != 1 or (obj := objects[0]) is None or obj[1] is None:
            return digests  # none, several, or one carrying an operation (no whole digest)
        user, values = obj[0], obj[3]
        if type(values) is not dict or self.values.get(user) is not values:
            return digests  # not a new user's (``_new_user``)
        if len(values) > len(self.names):  # a fresh file's first rows: no need to try
            return digests
        pack = packed(values, self.names)
        if pack is None:
            return digests
        self.values[user] = pack
        return ((user, obj[1], obj[2], pack),), digests[1], digests[2]

    def _repeated(self, ref: RowRef, objects: tuple[ObjectDigests | None, ...]) -> RowRef | None:
        """The earlier row of this run that sent one of these operations, if any."""
        rows = self.operation_rows
        if not rows:
            return None
        for obj in objects:
            if obj is not None and obj[3]:
                for operation in operations_of(obj):
                    earlier = rows.get(operation)
                    if earlier is not None and earlier != ref:
                        return earlier
        return None

    def _nothing_left(self, unchanged: int, dropped: int) -> Filtered:
        nothing = self._nothings.get((unchanged, dropped))
        if nothing is None:
            nothing = self._nothings[unchanged, dropped] = Filtered(None, unchanged, dropped)
        return nothing

    def _kept(
        self, occurrences: tuple[Occurrence | None, ...], known: set[Occurrence]
    ) -> Positions | None:
        """Positions of the events (or purchases) to send; None when all of them are."""
        in_flight = self.occurrences
        kept: list[int] | None = None
        for i, occ in enumerate(occurrences):
            if occ is not None and (occ in known or occ in in_flight):
                if kept is None:
                    kept = list(range(i))
                continue
            if occ is not None:  # else it cannot be fingerprinted: always sent
                in_flight.add(occ)
            if kept is not None:
                kept.append(i)
        return kept

    def _attributes_left(
        self,
        ref: RowRef,
        objects: tuple[ObjectDigests | None, ...],
        rows: dict[str, UserRow],
        known: set[Occurrence],
    ) -> tuple[list[Sent] | None, int]:
        """What is left of each attributes object (None: all of every one), and how many
        attributes were left out."""
        if len(objects) == 1:  # a mapped row: the fast path
            obj = objects[0]
            if obj is None:
                return None, 0
            sent, unchanged = self._object_left(ref, obj, rows.get(obj[0]), known)
            return (None if sent is None else [sent]), unchanged
        left: list[Sent] | None = None
        unchanged = 0
        for i, obj in enumerate(objects):
            part: Sent = None  # names nobody (push-token import): passed through
            if obj is not None:
                part, dropped = self._object_left(ref, obj, rows.get(obj[0]), known)
                unchanged += dropped
            if part is not None and left is None:
                left = [None] * i
            if left is not None:
                left.append(part)
        return left, unchanged

    def _object_left(
        self, ref: RowRef, obj: ObjectDigests, row: UserRow | None, known: set[Occurrence]
    ) -> tuple[Sent, int]:
        user, whole, count, values = obj
        in_flight = self.values.get(user)
        self._seen += 1
        if in_flight is None and row is not None and whole is not None and row[1] == whole:
            return (), count
        self._compared += 1
        if in_flight is None and row is None:
            return self._new_user(ref, user, whole, values), 0  # type: ignore[arg-type]
        # needs_values said so; one a worker packed is a dict again (``compared_digests``)
        assert type(values) is dict
        if in_flight is not None:
            in_flight = self.unpacked(in_flight)
        remembered = decode_values(row[2]) if row is not None else {}
        sent: list[str] = []
        flying: ValueDigests = {}  # what this object puts in flight
        exact = True  # every value had a digest: the whole digest may be stored
        # Else no digest is an operation's, none looked for: the mapping has none, or the
        # object has a whole digest (never made for one with an operation).
        operations = self.operations and whole is None
        for name, digest in values.items():
            if operations and digest is not None and len(digest) > DIGEST_BYTES:  # like an event
                exact = False  # a whole digest must never stand for an operation
                operation = (user, digest[1:])
                if operation in known or operation in self.occurrences:
                    self._operations_left_out += 1  # delivered before (or in flight: resent)
                    continue
                self.occurrences.add(operation)
                self._sent_operations = True
                if self._keyed:
                    self.operation_rows[operation] = ref
                sent.append(name)
                flying[name] = digest
                continue
            if digest is not None and self.same(digest, name, in_flight, remembered):
                continue
            exact = exact and digest is not None
            sent.append(name)
            flying[name] = digest
        if flying:
            self.values[user] = flying if in_flight is None else {**in_flight, **flying}
            self.fly(user, ref)
        unchanged = count - len(sent)
        # The whole digest is exact only if every key left out equals the database's value.
        storable = whole if exact and in_flight is None else None
        if sent:
            if storable is not None:
                self.wholes[ref, user] = storable
            return (None if not unchanged else tuple(sent)), unchanged
        if storable is not None:
            self.deferred[user] = (storable, None, None)
        return (), unchanged

    def _new_user(
        self, ref: RowRef, user: str, whole: bytes | None, values: ValueDigests | Packed
    ) -> Sent:
        """A user the state never saw: everything is sent, and its digests go in flight."""
        if isinstance(values, Packed):  # a worker's (snapshot.new_packed): whole, plain, some
            self.values[user] = values
            self.fly(user, ref)
            self.wholes[ref, user] = whole  # type: ignore[assignment]
            return None
        if values:  # else an identifier only: it creates the profile
            self.values[user] = values  # not a copy: nothing changes an entry (InFlight.values)
            self.fly(user, ref)
            operations = operations_of((user, whole, 0, values)) if self.operations else None
            if operations:
                self.occurrences.update(operations)
                self._sent_operations = True
                if self._keyed:
                    self.operation_rows.update(dict.fromkeys(operations, ref))
            elif whole is not None and None not in values.values():
                # Only here: record_deliveries takes a new user's kept whole as "all plain".
                self.wholes[ref, user] = whole
        return None
