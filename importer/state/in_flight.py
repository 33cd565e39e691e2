"""What this run has sent but not yet seen confirmed: the bookkeeping of what is in flight.

The database holds what Braze confirmed. Between ``filter`` and ``confirm`` an object is *in
flight*; a later row of the same run is compared with the in-flight value first, so:

- an order export that repeats the customer's attributes on every order line sends them once;
- the same event twice in one input (same fingerprint) is sent once — two identical events are one
  event, and deduplicating in the run (not only against the database) makes the outcome the same
  however confirmations and batches interleave, so a resume can never deliver it twice either.

If the in-flight object is then refused, its later duplicates were left out too; nothing is
remembered for a refused object, so all of them go out the next night.

``Delta`` (``changes``) puts objects in flight as it decides; ``settle`` takes one out once
Braze confirmed it (``record``), ``release`` one that will not be sent (``delivery``).
"""

from __future__ import annotations

from typing import Any

from importer.models import RowRef
from importer.state.digest import ItemDigests, Occurrence, Packed, ValueDigests, operations_of

_ABSENT: Any = object()


class InFlight:
    """What this session has sent but not yet seen confirmed, by user and by occurrence."""

    def __init__(self, names: dict[str, int]) -> None:
        self.names = names  # attribute name -> id, as stored
        # In flight: user -> name -> digest sent. A new user's entry is the very dict of its
        # row's digests, or their ``Packed`` form (no copy: settled by identity), so entries
        # are replaced, never changed.
        self.values: dict[str, ValueDigests | Packed] = {}
        # The row putting each user's entry in flight, or the rows (in order) when several did:
        # an entry leaves flight with the last of them, never value by value (``settle``).
        self.senders: dict[str, RowRef | list[RowRef]] = {}
        self.wholes: dict[tuple[RowRef, str], bytes] = {}  # whole digests awaiting confirmation
        self.occurrences: set[Occurrence] = set()  # events and purchases in flight
        # Rows in flight whose key is stored if Braze takes them whole (row_keys.memo).
        self.memos: dict[RowRef, tuple[bytes, int]] = {}
        self._sent_operations = False  # see sent_operations

    @property
    def sent_operations(self) -> bool:
        """Has this run sent any operation? Until it has, no confirmed or released object
        carries one, and nothing need look for them: a mapping whose json fields could hold
        operators (so ``Delta.operations`` is set) pays for them only once one is sent."""
        return self._sent_operations  # set wherever an operation goes in flight

    def unpacked(self, values: ValueDigests | Packed) -> ValueDigests:
        """The value digests as a dict (``Packed``: rare, a user with several rows in flight)."""
        return values.by_name(self.names) if isinstance(values, Packed) else values

    def compared_digests(self, digests: ItemDigests, rows: dict[str, Any]) -> ItemDigests:
        """``digests`` with value digests a worker packed for a user new to its snapshot
        (``snapshot.new_packed``) as a dict again when the user is not new here (stored since,
        or in flight): compared value by value, they may be narrowed."""
        for obj in digests[0]:
            if (
                obj is not None
                and type(obj[3]) is Packed
                and (obj[0] in rows or obj[0] in self.values)
            ):
                break
        else:
            return digests
        objects = tuple(
            obj if obj is None or type(obj[3]) is not Packed else (*obj[:3], self.unpacked(obj[3]))
            for obj in digests[0]
        )
        return objects, digests[1], digests[2]

    def same(
        self,
        digest: bytes,
        name: str,
        in_flight: ValueDigests | None,
        remembered: dict[int, bytes],
    ) -> bool:
        """Is ``digest`` what was last sent (in flight) or else last confirmed for this key?"""
        if in_flight is not None:
            last: bytes | None = in_flight.get(name, _ABSENT)
            if last is not _ABSENT:
                return digest == last  # an operator in flight (None) equals nothing
        name_id = self.names.get(name)
        return name_id is not None and remembered.get(name_id) == digest

    def fly(self, user: str, ref: RowRef) -> None:
        """Row ``ref`` put (more of) ``user``'s attributes in flight (``values``)."""
        earlier = self.senders.get(user)
        if earlier is None:
            self.senders[user] = ref
        elif isinstance(earlier, list):
            earlier.append(ref)
        else:
            self.senders[user] = [earlier, ref]

    def settle(self, ref: RowRef, user: str) -> bytes | None:
        """An attributes object left flight (confirmed or released): forget it as in flight.

        A user's entry holds the last value sent for each name, and leaves flight only with the
        last of the rows that put it there. Taking out a name whose value a settled row shares
        was wrong when a row still in flight sent another value in between: A, B, A in flight,
        the first A confirmed, then B: a later B was compared with the database and left out,
        while the second A was still to land (review of the fourteenth session, P1).

        Returns the whole digest to store (None unless still exact).
        """
        senders = self.senders.get(user)
        if isinstance(senders, list):
            if ref in senders:  # else not one of the rows that put it in flight
                senders.remove(ref)
                if len(senders) == 1:
                    self.senders[user] = senders[0]
        elif senders is not None and senders == ref:
            del self.senders[user]
            del self.values[user]
        whole = self.wholes.pop((ref, user), None)
        return whole if user not in self.values else None

    def release(self, ref: RowRef, digests: ItemDigests) -> None:
        """Objects that were filtered but will not be confirmed: no longer in flight."""
        objects, events, purchases = digests
        if self.memos:  # not taken whole: its key is not stored
            self.memos.pop(ref, None)
        for obj in objects:
            if obj is not None and obj[3] is not None:  # else never in flight
                self.settle(ref, obj[0])
                if self._sent_operations:
                    self.occurrences.difference_update(operations_of(obj))
        self.occurrences.difference_update(o for o in (*events, *purchases) if o is not None)
