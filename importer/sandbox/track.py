"""The body of ``POST /users/track``: parse, enforce object limits, validate each object.

Pure and synchronous (no HTTP here), so it is cheap to test and to reason about. Answers follow
docs/braze.md, Answers and what they mean: 400 for unparseable bodies, ``Max Input Length Exceeded``
and "no valid data"; otherwise 201 with ``*_processed`` counts and ``errors[]`` indexed within each
array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from importer.config import BatchLimits
from importer.models import ARRAYS, BrazeObject
from importer.rules import check_object

PARSE_ERROR = "Error while parsing request body. Please check your syntax."
MAX_INPUT = "Max Input Length Exceeded"
NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
BLOCKED = "provided external_id is blacklisted and disallowed"
REQUEST_REFUSED = "Bad Request"


@dataclass(frozen=True, slots=True)
class TrackResult:
    status: int  # 201 or 400
    payload: dict[str, Any]
    accepted: dict[str, list[BrazeObject]] = field(default_factory=dict)  # by array, on 201
    users: frozenset[str] = frozenset()  # distinct users of the accepted attributes objects
    rejected: int = 0  # objects answered in errors[]


def _refused(message: str) -> TrackResult:
    return TrackResult(400, {"message": message})


def user_key(obj: BrazeObject) -> str:
    """The user a valid object targets, as ``kind:value`` (the importer's ``Item.user`` form)."""
    for kind in ("external_id", "braze_id"):
        value = obj.get(kind)
        if value is not None:
            return f"{kind}:{value}"
    alias = obj.get("user_alias")
    if alias is not None:
        return f"user_alias:{alias['alias_label']}:{alias['alias_name']}"
    for kind in ("email", "phone"):
        value = obj.get(kind)
        if value is not None:
            return f"{kind}:{value}"
    return f"push_token_import:{id(obj)}"  # anonymous: every object is its own user


def _arrays(body: Any) -> dict[str, list[Any]] | None:
    if type(body) is not dict:
        return None
    arrays: dict[str, list[Any]] = {}
    for name in ARRAYS:
        value = body.get(name)
        if value is None:
            continue
        if type(value) is not list:
            return None
        arrays[name] = value
    return arrays


def _over_limits(arrays: dict[str, list[Any]], limits: BatchLimits) -> bool:
    sizes = [len(objects) for objects in arrays.values()]
    return sum(sizes) > limits.total or any(size > limits.per_array for size in sizes)


def _carries(arrays: dict[str, list[Any]], external_ids: frozenset[str]) -> bool:
    return any(
        type(obj) is dict and obj.get("external_id") in external_ids
        for objects in arrays.values()
        for obj in objects
    )


def process_body(
    raw: bytes,
    limits: BatchLimits,
    blocked: frozenset[str],
    poisoned: frozenset[str] = frozenset(),
) -> TrackResult:
    """``blocked`` users are refused per object inside a 201; a request carrying any
    ``poisoned`` user is refused whole with a 400 (to rehearse isolating a refused record)."""
    try:
        arrays = _arrays(orjson.loads(raw))
    except orjson.JSONDecodeError:
        arrays = None
    if arrays is None:
        return _refused(PARSE_ERROR)
    if _over_limits(arrays, limits):
        return _refused(MAX_INPUT)
    if poisoned and _carries(arrays, poisoned):
        return _refused(REQUEST_REFUSED)
    errors: list[dict[str, Any]] = []
    accepted: dict[str, list[BrazeObject]] = {}
    for name, objects in arrays.items():
        good: list[BrazeObject] = []
        for index, obj in enumerate(objects):
            violation = check_object(name, obj)
            if violation is None and blocked and obj.get("external_id") in blocked:
                errors.append({"type": BLOCKED, "input_array": name, "index": index})
            elif violation is not None:
                errors.append({"type": violation.message, "input_array": name, "index": index})
            else:
                good.append(obj)
        accepted[name] = good
    if not any(accepted.values()):
        payload: dict[str, Any] = {"message": NO_VALID_DATA}
        if errors:
            payload["errors"] = errors
        return TrackResult(400, payload, rejected=len(errors))
    users = frozenset(user_key(obj) for obj in accepted.get("attributes", ()))
    payload = {"message": "success"}
    for name, good in accepted.items():
        # Braze counts attributes per distinct user, events and purchases per object
        # (docs/braze.md, Answers and what they mean).
        payload[f"{name}_processed"] = len(users) if name == "attributes" else len(good)
    if errors:
        payload["errors"] = errors
    return TrackResult(201, payload, accepted, users, len(errors))
