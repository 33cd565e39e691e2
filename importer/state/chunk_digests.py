"""The digests a chunk of items is decided by (``DeliveryState.filter_many``).

Each item comes with its digests (made in a conversion worker), with a worker's verdict
(``snapshot``), or with nothing: then they are made here. A verdict is taken unless a later
write or an earlier row of the chunk may have changed what it saw; the item is then converted
again (``objects``). Before the delivered keys are looked up, the items whose objects will be
compared value by value get their value digests, their operations named: an operation is
looked up as an event is, so it must be known by then (an object whose whole digest is the
stored one carries none: none is ever stored whole).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any

from importer.models import Item
from importer.state.digest import ItemDigests, OperationSources
from importer.state.row_digests import item_digests, with_values
from importer.state.snapshot import Verdict, compared, is_verdict
from importer.state.store import UserRow
from importer.state.writes import Writes

Made = tuple[Sequence[Item], list[Any]]  # the items (some converted again), their digests


def bare(item: Item) -> bool:
    """Does the item carry its digests only (see ``DeliveryState.filter_many``)?"""
    return item.wire is None and not (item.attributes or item.events or item.purchases)


def lacks_values(digests: ItemDigests) -> bool:
    for obj in digests[0]:  # noqa: SIM110 - a loop: no generator per row
        if obj is not None and obj[3] is None:
            return True
    return False


def made(
    items: Sequence[Item],
    objects: Callable[[Item], Item] | None,
    wants: bool,
    sources: OperationSources,
    in_flight: Container[str],
    writes: Writes,
) -> Made:
    """Each item's digests (made here when it came without) or verdict; an item whose
    verdict cannot be taken is converted again (``objects``) and gets its digests here.
    ``wants``: whether to make value digests here (``DeliveryState.wants_values``)."""
    again: list[Item] | None = None  # the items, some converted again
    digests: list[Any] = []
    users: set[str] = set()  # users earlier rows of the chunk may put in flight
    for n, item in enumerate(items):
        d = item.digests
        if d is None:
            d = item_digests(item, wants, sources)
        elif is_verdict(d):
            verdict: Verdict = d
            vouched = verdict[3]
            if not (
                writes.unseen(verdict[0], vouched)
                or any(u in in_flight or u in users for u in vouched)
            ):
                digests.append(d)
                continue
            if objects is None:
                raise ValueError(f"{item.ref}: an item with a verdict only needs objects=")
            if again is None:  # the caller's list stays as it was
                again = list(items)
            # Its row key kept: stored if Braze takes it whole (row_keys).
            item = again[n] = objects(item)._replace(row_key=item.row_key)
            d = item_digests(item, True, sources)
        users.update([obj[0] for obj in d[0] if obj is not None])
        digests.append(d)
    return (items if again is None else again), digests


def valued(
    items: Sequence[Item],
    digests: list[Any],
    rows: dict[str, UserRow],
    objects: Callable[[Item], Item] | None,
    sources: OperationSources,
) -> Made:
    """The items whose objects will be compared by value (a user new or changed: no stored
    whole digest like theirs) with their value digests, their operations named."""
    again: list[Item] | None = None
    for n, d in enumerate(digests):
        if is_verdict(d) or not lacks_values(d) or not compared(d, rows):
            continue
        item = items[n]
        if bare(item):
            if objects is None:
                raise ValueError(f"{item.ref}: an item without its objects needs objects=")
            if again is None:
                again = list(items)
            item = again[n] = objects(item)._replace(digests=d, row_key=item.row_key)
        digests[n] = with_values(item, d, sources)
    return (items if again is None else again), digests
