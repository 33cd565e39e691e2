"""How one attribute of a ``/users/track`` attributes object changes a stored profile
(docs/braze.md, Operations on attributes), shared by the sandbox (which keeps profiles) and
``verify`` (which works out what a profile should hold).

``null`` unsets; ``subscription_groups`` change the state of each group named, not the list;
arrays are stored as unique values, at most ``MAX_ARRAY_ITEMS``, the oldest
dropped; ``add`` moves an existing value to the end; nested objects are replaced, or deep-merged
with ``_merge_objects``; ``$add``, ``$remove``, ``$update`` apply in that order.
"""

from __future__ import annotations

from typing import Any

MAX_ARRAY_ITEMS = 500
_ARRAY_OPERATORS = frozenset({"add", "remove"})
_OBJECT_OPERATORS = frozenset({"$add", "$remove", "$update"})


def operation_of(value: Any) -> str | None:
    """``"inc"``, ``"array"`` (add/remove) or ``"objects"`` ($add/$remove/$update) for a value
    that changes the stored one rather than replacing it; None for a plain value."""
    if type(value) is not dict or not value:
        return None
    if len(value) == 1 and "inc" in value:
        return "inc"
    if value.keys() <= _ARRAY_OPERATORS:
        return "array"
    if value.keys() & _OBJECT_OPERATORS:
        return "objects"
    return None


def _unique(values: list[Any]) -> list[Any]:
    """An array as Braze stores it: each value once, at its first place."""
    kept: list[Any] = []
    for value in values:
        if value not in kept:
            kept.append(value)
    return kept[-MAX_ARRAY_ITEMS:]


def _merge(stored: Any, update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(stored) if type(stored) is dict else {}
    for key, value in update.items():
        if type(value) is dict and type(merged.get(key)) is dict:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _array_operation(stored: Any, operation: dict[str, Any]) -> list[Any]:
    values = list(stored) if type(stored) is list else []
    for value in operation.get("add") or ():
        if value in values:
            values.remove(value)  # an existing value moves to the end
        values.append(value)
    removed = operation.get("remove") or ()
    return [v for v in values if v not in removed][-MAX_ARRAY_ITEMS:]


def _matches(entry: Any, selector: Any) -> bool:
    if type(entry) is not dict or type(selector) is not dict:
        return False
    key = selector.get("$identifier_key")
    return key is not None and entry.get(key) == selector.get("$identifier_value")


def _object_operation(stored: Any, operation: dict[str, Any], merge: bool) -> list[Any]:
    """``$add``, then ``$remove``, then ``$update``, as Braze orders them within one request."""
    values = list(stored) if type(stored) is list else []
    values.extend(operation.get("$add") or ())
    for selector in operation.get("$remove") or ():
        values = [v for v in values if not _matches(v, selector)]
    for update in operation.get("$update") or ():
        new = update.get("$new_object") if type(update) is dict else None
        if type(new) is not dict:
            continue
        values = [
            (_merge(v, new) if merge else {**v, **new}) if _matches(v, update) else v
            for v in values
        ]
    return values


def _subscription_groups(stored: Any, sent: list[Any]) -> list[dict[str, Any]]:
    """Each group sent changes that group's state; the user's other groups stay as they were."""
    states = {g["subscription_group_id"]: g for g in stored or ()}
    for group in sent:
        states[group["subscription_group_id"]] = {
            "subscription_group_id": group["subscription_group_id"],
            "subscription_state": group["subscription_state"],
        }
    return list(states.values())


def apply_attribute(attributes: dict[str, Any], name: str, value: Any, merge: bool) -> None:
    """Change ``attributes`` as Braze changes a profile when ``name`` is sent as ``value``
    (``merge``: the object carried ``"_merge_objects": true``)."""
    kind = operation_of(value)
    if value is None:
        attributes.pop(name, None)
    elif name == "subscription_groups" and type(value) is list:
        attributes[name] = _subscription_groups(attributes.get(name), value)
    elif kind == "inc":
        stored = attributes.get(name)
        attributes[name] = (stored if type(stored) is int else 0) + value["inc"]
    elif kind == "array":
        attributes[name] = _array_operation(attributes.get(name), value)
    elif kind == "objects":
        attributes[name] = _object_operation(attributes.get(name), value, merge)
    elif type(value) is list:
        attributes[name] = _unique(value)
    elif type(value) is dict and merge:
        attributes[name] = _merge(attributes.get(name), value)
    else:
        attributes[name] = value


# Keys that name the user or steer the object: equal in both (one user), the later kept.
_STEERING = frozenset(
    {"external_id", "braze_id", "user_alias", "email", "phone"}
    | {"_update_existing_only", "push_token_import", "_merge_objects"}
)


_WHOLE_OBJECT_FLAGS = ("_update_existing_only", "push_token_import")
_DOUBLE_OPT_IN = "use_double_opt_in_logic"
_ABSENT = object()


def combine_attributes(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any] | None:
    """One attributes object that changes a profile as ``earlier`` then ``later`` (both for one
    user) do; None when no single object can (docs/braze.md, Operations on attributes).

    Plain values: the later wins. Two increments add up. Anything else where an operation meets
    another value of the same attribute (``add`` then ``remove``, a set after an ``inc``), where
    two nested objects would both be merged, or where ``_merge_objects`` differs while some
    nested object depends on it, has no single object: the caller sends them apart, in order.
    """
    merge = earlier.get("_merge_objects") is True
    if merge != (later.get("_merge_objects") is True) and (
        _has_nested(earlier) or _has_nested(later)
    ):
        return None
    # Whether the user may be created, and how push tokens are taken, cover the whole object:
    # a row that may create the user folded into one that may not would be lost with it.
    for flag in _WHOLE_OBJECT_FLAGS:
        if earlier.get(flag, _ABSENT) != later.get(flag, _ABSENT):
            return None
    combined = dict(earlier)
    for name, value in later.items():
        if name not in combined or name in _STEERING:
            combined[name] = value
            continue
        before = combined[name]
        kinds = (operation_of(before), operation_of(value))
        if name == "subscription_groups":
            groups = _combined_groups(before, value)
            if groups is None:
                return None
            combined[name] = groups
        elif kinds == ("inc", "inc"):
            combined[name] = {"inc": before["inc"] + value["inc"]}
        elif kinds != (None, None) or (merge and type(before) is dict and type(value) is dict):
            return None
        else:
            combined[name] = value
    return combined


def _combined_groups(earlier: Any, later: Any) -> list[dict[str, Any]] | None:
    """Both rows' group changes in one list, by group id in row order: a group named twice
    keeps its first place and the later entry, so a subscribe then an unsubscribe of one
    group ends unsubscribed, as Braze changes each group named (docs/braze.md, Operations on
    attributes). None when either is not a list of groups with ids: the rows then go apart."""
    groups: dict[Any, dict[str, Any]] = {}
    for sent in (earlier, later):
        if type(sent) is not list:
            return None
        for group in sent:
            if type(group) is not dict or "subscription_group_id" not in group:
                return None
            named = group["subscription_group_id"]
            before = groups.get(named)
            if before is not None and before.get(_DOUBLE_OPT_IN) != group.get(_DOUBLE_OPT_IN):
                return None  # subscribed, then asked with double opt-in: not one change
            groups[named] = group
    return list(groups.values())


def _has_nested(obj: dict[str, Any]) -> bool:
    """Does ``obj`` set some attribute to an object (which ``_merge_objects`` would merge)?"""
    return any(
        type(v) is dict and operation_of(v) is None and k not in _STEERING for k, v in obj.items()
    )
