"""What Braze should hold for each user after a run: worked out from the rows it delivered.

Rows are taken in the order the run read them (one user's requests went out in that order,
importer.send.user_order), so each attribute's last delivered value is what the profile holds
(``None``: unset). A value that changes the stored one (``inc``, ``add``/``remove``, ``$add``...)
leaves only its kind to check. Events and purchases: per name / product id, how many this run
delivered and its earliest and latest time.

A sample is the users whose keyed hash is among the ``size`` smallest (bottom-k sampling): one
pass, reproducible for a seed, and only the sampled users' values are ever held — a user that
leaves the sample can never come back, as the bar it missed only falls.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from importer.models import BrazeObject, Item
from importer.rules import apply_attribute, operation_of, parse_instant

# Keys of an attributes object that are not profile attributes.
NOT_ATTRIBUTES = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "_merge_objects"}
    | {"push_token_import", "app_id"}
)
CHECKED_KINDS = ("external_id", "user_alias")


@dataclass(slots=True)
class Expected:
    """What one user's profile should hold after this run."""

    user: str  # the importer's user key: "external_id:42", "user_alias:label:name"
    attributes: dict[str, Any] = field(default_factory=dict)  # name -> value (None: unset)
    operations: dict[str, str] = field(default_factory=dict)  # name -> "inc", "array", "objects"
    events: dict[str, list[float]] = field(default_factory=dict)  # name -> [count, first, last]
    purchases: dict[str, list[float]] = field(default_factory=dict)
    uncertain: bool = False  # a row of this user may or may not have landed (ambiguous)

    def absorb(self, item: Item) -> None:
        for obj in item.attributes:
            self._attributes(obj)
        for event in item.events:
            _count(self.events, event.get("name"), event.get("time"))
        for purchase in item.purchases:
            # One per object: whether Braze counts a quantity of N as N is a lower bound
            # either way (docs/braze.md, Event and purchase rules).
            _count(self.purchases, purchase.get("product_id"), purchase.get("time"))

    def _attributes(self, obj: BrazeObject) -> None:
        merge = obj.get("_merge_objects") is True
        attributes = self.attributes
        for name, value in obj.items():
            if name in NOT_ATTRIBUTES:
                continue
            kind = operation_of(value)
            if kind is not None:
                self.operations[name] = kind
                attributes.pop(name, None)
                continue
            self.operations.pop(name, None)
            if value is None:
                attributes[name] = None
            else:
                apply_attribute(attributes, name, value, merge)


def _count(table: dict[str, list[float]], name: Any, when: Any) -> None:
    moment = parse_instant(when)
    if type(name) is not str or moment is None:
        return
    entry = table.get(name)
    if entry is None:
        table[name] = [1, moment, moment]
        return
    entry[0] += 1
    entry[1] = min(entry[1], moment)
    entry[2] = max(entry[2], moment)


def user_kind(user: str) -> str:
    return user.split(":", 1)[0]


class Sample:
    """The expected profiles of up to ``size`` users (None: every user), chosen by a keyed
    hash of the user. Feed it delivered items in run order."""

    def __init__(self, size: int | None, seed: int) -> None:
        self._size = size
        self._key = seed.to_bytes(8, "big", signed=True)
        self._heap: list[tuple[int, str]] = []  # (-hash, user): the largest hash on top
        self.users: dict[str, Expected] = {}
        self.rows = 0  # delivered rows fed
        self.other_identifier_rows = 0  # rows of users not identified by external_id / alias

    def _rank(self, user: str) -> int:
        digest = hashlib.blake2b(user.encode(), key=self._key, digest_size=8).digest()
        return int.from_bytes(digest)

    def _slot(self, user: str) -> Expected | None:
        expected = self.users.get(user)
        if expected is not None or self._size is None:
            if expected is None:
                expected = self.users[user] = Expected(user)
            return expected
        rank = self._rank(user)
        if len(self._heap) >= self._size:
            if self._size == 0 or rank >= -self._heap[0][0]:
                return None
            _, dropped = heapq.heappop(self._heap)
            del self.users[dropped]
        heapq.heappush(self._heap, (-rank, user))
        expected = self.users[user] = Expected(user)
        return expected

    def feed(self, item: Item, *, uncertain: bool = False) -> None:
        self.rows += 1
        if user_kind(item.user) not in CHECKED_KINDS:
            self.other_identifier_rows += 1
            return
        expected = self._slot(item.user)
        if expected is None:
            return
        if uncertain:  # this row may or may not have landed: the user cannot be judged
            expected.uncertain = True
        else:
            expected.absorb(item)

    def feed_all(self, items: Iterable[Item]) -> None:
        for item in items:
            self.feed(item)

    def chosen(self) -> list[Expected]:
        """The sampled users, in a stable order (by user key)."""
        return [self.users[user] for user in sorted(self.users)]
