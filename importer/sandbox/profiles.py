"""The sandbox's user profiles: every accepted object applied as Braze would apply it.

docs/braze.md, What the sandbox emulates: a profile is created for an unknown ``external_id``
(unless ``_update_existing_only``), for an unknown alias only with ``_update_existing_only:
false``; attributes change as docs/braze.md, Operations on attributes, says
(``importer.rules.apply_attribute``). Events and purchases are counted per name / product id
with their first and last time (a future time counts as now; a purchase of quantity N as N).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from importer.models import BrazeObject
from importer.rules import apply_attribute, parse_instant
from importer.sandbox.track import user_key

# Keys of an attributes object that are not attributes of the profile.
_NOT_STORED = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "_merge_objects"}
    | {"push_token_import", "app_id"}
)


@dataclass(slots=True)
class Profile:
    key: str  # the user as the importer names it, e.g. "external_id:42"
    created_at: float
    attributes: dict[str, Any] = field(default_factory=dict)
    events: dict[str, list[float]] = field(default_factory=dict)  # name -> [count, first, last]
    purchases: dict[str, list[float]] = field(default_factory=dict)

    @property
    def external_id(self) -> str | None:
        return self.key[12:] if self.key.startswith("external_id:") else None


class Profiles:
    """Every user's profile, keyed like ``Item.user``. ``clock`` is epoch seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_key: dict[str, Profile] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Profile | None:
        return self._by_key.get(key)

    def apply(self, array: str, obj: BrazeObject) -> None:
        profile = self._profile_for(obj)
        if profile is None:
            return
        if array == "attributes":
            merge = obj.get("_merge_objects") is True
            for name, value in obj.items():
                if name not in _NOT_STORED:
                    apply_attribute(profile.attributes, name, value, merge)
        elif array == "events":
            self._count(profile.events, obj["name"], obj["time"], 1)
        else:
            quantity = obj.get("quantity")
            self._count(profile.purchases, obj["product_id"], obj["time"], quantity or 1)

    def _profile_for(self, obj: BrazeObject) -> Profile | None:
        key = user_key(obj)
        profile = self._by_key.get(key)
        if profile is not None:
            return profile
        only_existing = obj.get("_update_existing_only")
        # docs/braze.md, Identifiers: an unknown alias is created only when asked explicitly.
        creates = only_existing is False if key.startswith("user_alias:") else not only_existing
        if not creates or key.startswith("push_token_import:"):
            return None
        profile = Profile(key, self._clock())
        self._by_key[key] = profile
        return profile

    def _count(self, table: dict[str, list[float]], name: str, when: str, count: int) -> None:
        now = self._clock()
        moment = parse_instant(when)
        moment = now if moment is None or moment > now else moment  # future times: now
        entry = table.get(name)
        if entry is None:
            table[name] = [count, moment, moment]
            return
        entry[0] += count
        entry[1] = min(entry[1], moment)
        entry[2] = max(entry[2], moment)
