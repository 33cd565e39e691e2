"""Items -> Batch: group the objects of whole rows into requests within Braze's limits.

Every object is serialised once (importer.send.item_json); a body is the join of those fragments
(importer.send.open_request), so its size is known before it exists and a request never crosses the
object or byte limits. When several rows of one request update the same user's attributes, their
attributes objects are merged into one (later rows win key by key, two increments add up:
``combine_attributes``): Braze may apply two writes for one user at once and lose one
(docs/braze.md, Consistency and ordering); the page speaks of requests, and inside one request we
take the same care. Rows whose objects cannot be merged into one (an ``add`` then a ``remove`` of
one attribute, a set after an ``inc``) go in separate requests, in row order; per-user order keeps
those from being in flight together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from importer.config import BatchLimits
from importer.models import ARRAYS, Batch, BrazeObject, Item, RowFailure
from importer.rules import combine_attributes, user_key
from importer.send.item_json import Fragments, Serialised
from importer.send.open_request import ENVELOPE_BYTES, OpenRequest, closed


def _oversize(item: Serialised, limits: BatchLimits) -> str | None:
    if item.total > limits.total or max(item.counts) > limits.per_array:
        kinds = ", ".join(f"{n} {a}" for a, n in zip(ARRAYS, item.counts, strict=True) if n)
        return (
            f"the row produced {item.total} objects ({kinds}); "
            f"one request holds at most {limits.total} ({limits.per_array} per array)"
        )
    if item.size + ENVELOPE_BYTES > limits.max_body_bytes:
        return f"the row's objects take more than {limits.max_body_bytes} bytes"
    return None


def _fits(batch: OpenRequest, item: Serialised, limits: BatchLimits) -> bool:
    if batch.total + item.total > limits.total:
        return False
    per_array = limits.per_array
    owners, counts = batch.owners, item.counts
    if (
        len(owners[0]) + counts[0] > per_array
        or len(owners[1]) + counts[1] > per_array
        or len(owners[2]) + counts[2] > per_array
    ):
        return False
    return batch.size + item.size <= limits.max_body_bytes


def _combined(batch: OpenRequest, index: int, item: Item) -> BrazeObject | None:
    """The batch's object for the user at ``index`` with the single attributes object of
    ``item`` folded in; None when they do not combine into one (``combine_attributes``).
    The fold so far is kept (``OpenRequest.combined``): each row is combined once, not once per
    later row of its user."""
    so_far = batch.combined.get(index)
    if so_far is None:
        so_far = batch.items[batch.owners[0][index]].decoded().attributes[0]
    return combine_attributes(so_far, item.attributes[0])


def _merge_attributes(batch: OpenRequest, index: int, item: Item, merged: BrazeObject) -> None:
    """Put ``merged`` (``_combined``) in the body as the batch's object for ``item``'s user."""
    owners = [batch.owners[0][index], *batch.merged.get(index, [])]
    # The body holds only the merged object: keep each row's own (importer.models.Batch.items).
    first = owners[0]
    batch.own_attributes.setdefault(first, batch.items[first].decoded().attributes)
    batch.own_attributes[len(batch.items) - 1] = item.attributes
    old = batch.fragments[0][index]
    new = orjson.dumps(merged)
    batch.fragments[0][index] = new
    batch.combined[index] = merged
    batch.size += len(new) - len(old)
    batch.merged.setdefault(index, []).append(len(batch.items) - 1)


_Placed = tuple[BrazeObject | None, int | None]  # (combined object, index of the user's)
_ALONE: _Placed = (None, None)
# attribute_of_user's index for a user whose row brought several attributes objects (a JSONL
# fragment), and for every other user those objects name: a later row folded into the first
# of them would be applied before the others, and one alone beside them in any order.
_SEVERAL = -1


def _users(item: Item) -> set[str]:
    """Every user a row's attributes objects name (a JSONL fragment may name several): each
    is claimed for per-user order (importer.send.user_order), not only the row's own."""
    users = {item.user}
    for obj in item.decoded().attributes:
        key = user_key(obj)
        if key is not None:
            users.add(key)
    return users


def _placed(batch: OpenRequest, item: Item, serialised: Serialised) -> _Placed | None:
    """How ``item`` joins ``batch``: its single attributes object combined with its user's
    object there (and that object's index), or alone; None when the two do not combine, so
    the row must go in the next request. One look-up of the user per row."""
    count = serialised.counts[0]
    if count != 1:
        # Several objects of a row never fold into one; none may join its users' others.
        if count and not batch.attribute_of_user.keys().isdisjoint(_users(item)):
            return None
        return _ALONE
    earlier = batch.attribute_of_user.get(item.user)
    if earlier is None:
        return _ALONE
    if earlier == _SEVERAL:
        return None
    merged = _combined(batch, earlier, item.decoded())
    return None if merged is None else (merged, earlier)


def _add(batch: OpenRequest, item: Item, serialised: Serialised, placed: _Placed = _ALONE) -> None:
    """Add ``item`` as ``_placed`` says (``_ALONE``: its user has no attributes object here)."""
    merged, earlier = placed
    index = len(batch.items)
    batch.items.append(item)
    counts = serialised.counts
    if counts[0] == 1:
        if earlier is not None and merged is not None:
            _merge_attributes(batch, earlier, item.decoded(), merged)
            serialised = serialised.without_attributes()
            counts = serialised.counts
        else:
            batch.attribute_of_user[item.user] = len(batch.fragments[0])
    elif counts[0]:
        batch.attribute_of_user.update(dict.fromkeys(_users(item), _SEVERAL))
    # Unrolled over the three arrays (this runs once per row); mostly one object or none.
    fragments, into, owners = serialised.fragments, batch.fragments, batch.owners
    if counts[0] == 1:
        into[0].append(fragments[0][0])
        owners[0].append(index)
    elif counts[0]:
        into[0].extend(fragments[0])
        owners[0].extend([index] * counts[0])
    if counts[1] == 1:
        into[1].append(fragments[1][0])
        owners[1].append(index)
    elif counts[1]:
        into[1].extend(fragments[1])
        owners[1].extend([index] * counts[1])
    if counts[2] == 1:
        into[2].append(fragments[2][0])
        owners[2].append(index)
    elif counts[2]:
        into[2].extend(fragments[2])
        owners[2].extend([index] * counts[2])
    batch.total += serialised.total
    batch.size += serialised.size


def _added(batch: OpenRequest, item: Item, limits: BatchLimits) -> bool:
    """Add a mapped row's usual shape in one step: one attributes object, for a user with
    none in this request yet, and any events and purchases (a wide mapping's rows carry
    several events); what ``Serialised``, ``_placed``, ``_fits`` and ``_add`` would do for
    it, without their objects and calls. False, and nothing added, for any other row or one
    that does not fit."""
    if item.user in batch.attribute_of_user:
        return False
    wire = item.wire
    if wire is None:
        of_a = item.attributes
        if len(of_a) != 1:
            return False
        dumps = orjson.dumps
        of_e, of_p = item.events, item.purchases
        attribute = dumps(of_a[0])
        events: Fragments = (dumps(of_e[0]),) if len(of_e) == 1 else tuple(map(dumps, of_e))
        purchases: Fragments = (dumps(of_p[0]),) if len(of_p) == 1 else tuple(map(dumps, of_p))
    else:
        if len(wire[0]) != 1:
            return False
        (attribute,), events, purchases = wire
    n_events, n_purchases = len(events), len(purchases)
    owners, per_array = batch.owners, limits.per_array
    total = batch.total + 1 + n_events + n_purchases
    size = batch.size + len(attribute) + 1
    if n_events == 1:
        size += len(events[0]) + 1
    elif n_events:
        size += sum(map(len, events)) + n_events
    if n_purchases == 1:
        size += len(purchases[0]) + 1
    elif n_purchases:
        size += sum(map(len, purchases)) + n_purchases
    if (
        total > limits.total
        or len(owners[0]) + 1 > per_array
        or len(owners[1]) + n_events > per_array
        or len(owners[2]) + n_purchases > per_array
        or size > limits.max_body_bytes
    ):
        return False
    index = len(batch.items)
    batch.items.append(item)
    into = batch.fragments
    batch.attribute_of_user[item.user] = len(into[0])
    into[0].append(attribute)
    owners[0].append(index)
    if n_events == 1:
        into[1].append(events[0])
        owners[1].append(index)
    elif n_events:
        into[1].extend(events)
        owners[1].extend([index] * n_events)
    if n_purchases == 1:
        into[2].append(purchases[0])
        owners[2].append(index)
    elif n_purchases:
        into[2].extend(purchases)
        owners[2].extend([index] * n_purchases)
    batch.total = total
    batch.size = size
    return True


def pack(
    items: Iterable[Item], limits: BatchLimits, *, first_number: int = 1
) -> Iterator[Batch | RowFailure]:
    """Yield full batches as they fill, then the last partial one.

    A row whose objects can never fit one request is yielded as a RowFailure (stage validate).
    """
    number = first_number
    batch = OpenRequest()
    for item in items:
        if _added(batch, item, limits):
            continue
        serialised = Serialised(item)
        placed = _placed(batch, item, serialised)
        if placed is None:  # it cannot share this request with the user's rows
            yield closed(batch, number)
            number += 1
            batch = OpenRequest()
            placed = _ALONE
        if not _fits(batch, serialised, limits):
            problem = _oversize(serialised, limits)
            if problem:
                yield RowFailure(
                    ref=item.ref,
                    stage="validate",
                    error="row_too_large",
                    message=problem,
                    record=item.record,
                    objects=item.objects(),
                )
                continue
            yield closed(batch, number)
            number += 1
            batch = OpenRequest()
            placed = _ALONE
        _add(batch, item, serialised, placed)
    if batch.items:
        yield closed(batch, number)


def split(batch: Batch) -> tuple[Batch, ...]:
    """Halve a batch (by rows) into new requests, in row order; used after 413 or a refused 400.

    Usually two. A half whose rows of one user no longer combine into one object is cut there
    (rare: e.g. the ``_merge_objects`` flag their fold carried came from a row of the other
    half), so a user never has two attributes objects in one request."""
    items = batch.items()
    middle = len(items) // 2
    parts: list[OpenRequest] = []
    for rows in (items[:middle], items[middle:]):
        part = OpenRequest()
        for item in rows:
            serialised = Serialised(item)
            placed = _placed(part, item, serialised)
            if placed is None:
                parts.append(part)
                part, placed = OpenRequest(), _ALONE
            _add(part, item, serialised, placed)
        parts.append(part)
    return tuple(closed(p, batch.number, f"{batch.part}.{n}") for n, p in enumerate(parts, 1))
