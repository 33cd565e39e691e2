"""The body of ``POST /users/export/ids``: check the request, answer from the profiles.

docs/braze.md, Exporting profiles: at most ``MAX_EXPORT_IDS`` external ids and aliases in all,
``device_id`` / ``braze_id`` / ``email_address`` / ``phone`` one value each, ``fields_to_export``
required (a new workspace; ``export_fields_required=False`` for an old one) and only known
names. The answer holds the asked fields that have a value, events and purchases of the last
``EVENT_WINDOW_DAYS`` days (by their last time; our reading), and ``invalid_user_ids``. Custom
attributes holding a time come back in the export's own time form.

The ``p_lose_attribute`` fault leaves one attribute out of the answer for that share of users,
chosen by a hash of the seed and the user (the same users and attributes at every ask), so a
test can check that ``verify`` reports exactly them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from importer.rules import (
    ATTRIBUTE_FIELDS,
    EVENT_WINDOW_DAYS,
    EXPORT_FIELDS,
    EXPORTED_STANDARD,
    MAX_EXPORT_IDS,
    braze_time,
    has_time_of_day,
    parse_instant,
)
from importer.sandbox.profiles import Profile, Profiles
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.track import PARSE_ERROR

TOO_MANY_IDS = "The max number of external_ids and aliases per request was exceeded"
_SINGLE_IDS = {"device_id": "device_id", "braze_id": "braze_id", "email_address": "email"}
_SINGLE_IDS |= {"phone": "phone"}


@dataclass(frozen=True, slots=True)
class ExportResult:
    status: int
    payload: dict[str, Any]


def _refused(message: str) -> ExportResult:
    return ExportResult(400, {"message": message})


def _draw(seed: int | None, key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def _exported_attributes(profile: Profile) -> list[str]:
    return sorted(
        name
        for name in profile.attributes
        if name in EXPORTED_STANDARD or name not in ATTRIBUTE_FIELDS
    )


def _custom_value(value: Any) -> Any:
    if type(value) is str and has_time_of_day(value):
        moment = parse_instant(value)
        if moment is not None:
            return braze_time(moment)
    return value


class Exporter:
    """Answers export requests from ``profiles``; ``lost`` records the fault's victims
    (user -> attribute left out)."""

    def __init__(
        self,
        settings: SandboxSettings,
        profiles: Profiles,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._profiles = profiles
        self._clock = clock
        self.lost: dict[str, str] = {}

    def answer(self, raw: bytes) -> ExportResult:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _refused(PARSE_ERROR)
        if type(body) is not dict:
            return _refused(PARSE_ERROR)
        asked = self._identifiers(body)
        if isinstance(asked, ExportResult):
            return asked
        fields = body.get("fields_to_export")
        if fields is None and self._settings.export_fields_required:
            return _refused("fields_to_export is required")
        if fields is not None:
            if type(fields) is not list or not all(type(f) is str for f in fields):
                return _refused("fields_to_export must be an array of field names")
            unknown = sorted(set(fields) - EXPORT_FIELDS)
            if unknown:
                return _refused(f"Invalid fields_to_export: {', '.join(unknown)}")
        wanted = frozenset(fields) if fields is not None else EXPORT_FIELDS
        users, invalid = [], []
        for key, shown in asked:
            profile = self._profiles.get(key)
            if profile is None:
                invalid.append(shown)
            else:
                users.append(self._user(profile, wanted))
        payload: dict[str, Any] = {"message": "success", "users": users}
        if invalid:
            payload["invalid_user_ids"] = invalid
        return ExportResult(200, payload)

    def _identifiers(self, body: dict[str, Any]) -> list[tuple[str, str]] | ExportResult:
        """(profile key, the identifier as invalid_user_ids would show it), in asked order."""
        external_ids = body.get("external_ids") or []
        aliases = body.get("user_aliases") or []
        if type(external_ids) is not list or not all(type(e) is str for e in external_ids):
            return _refused("external_ids must be an array of strings")
        if type(aliases) is not list or not all(
            type(a) is dict
            and type(a.get("alias_name")) is str
            and type(a.get("alias_label")) is str
            for a in aliases
        ):
            return _refused("user_aliases must be an array of {alias_name, alias_label}")
        if len(external_ids) + len(aliases) > MAX_EXPORT_IDS:
            return _refused(TOO_MANY_IDS)
        asked = [(f"external_id:{e}", e) for e in external_ids]
        asked += [
            (f"user_alias:{a['alias_label']}:{a['alias_name']}", a["alias_name"]) for a in aliases
        ]
        for name, kind in _SINGLE_IDS.items():
            value = body.get(name)
            if value is None:
                continue
            if type(value) is not str:
                return _refused(f"{name} takes one identifier (a string)")
            asked.append((f"{kind}:{value}", value))
        if not asked:
            return _refused("No identifiers were given")
        return asked

    def _user(self, profile: Profile, wanted: frozenset[str]) -> dict[str, Any]:
        user: dict[str, Any] = {}
        if "external_id" in wanted and profile.external_id is not None:
            user["external_id"] = profile.external_id
        if "user_aliases" in wanted and profile.key.startswith("user_alias:"):
            label, name = profile.key[11:].split(":", 1)
            user["user_aliases"] = [{"alias_name": name, "alias_label": label}]
        if "created_at" in wanted:
            user["created_at"] = braze_time(profile.created_at)
        lost = self._lost_attribute(profile)
        custom = {}
        for name, value in profile.attributes.items():
            if name == lost:
                continue
            if name not in ATTRIBUTE_FIELDS:
                custom[name] = _custom_value(value)
            elif name in EXPORTED_STANDARD and name in wanted:
                user[name] = value
        if custom and "custom_attributes" in wanted:
            user["custom_attributes"] = custom
        since = self._clock() - EVENT_WINDOW_DAYS * 86_400
        for field, table in (("custom_events", profile.events), ("purchases", profile.purchases)):
            recent = [
                {"name": n, "first": braze_time(e[1]), "last": braze_time(e[2]), "count": e[0]}
                for n, e in table.items()
                if e[2] >= since
            ]
            if recent and field in wanted:
                user[field] = recent
        return user

    def _lost_attribute(self, profile: Profile) -> str | None:
        share = self._settings.p_lose_attribute
        if share <= 0 or _draw(self._settings.seed, profile.key, "user") >= share:
            return None
        names = _exported_attributes(profile)
        if not names:
            return None
        name = names[int(_draw(self._settings.seed, profile.key, "name") * len(names))]
        self.lost[profile.key] = name
        return name
