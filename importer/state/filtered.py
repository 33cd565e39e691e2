"""What is left of an item to send (``Filtered``), and the item narrowed to it.

``Delta.decide`` says which objects are left (and of an attributes object, which attributes);
``narrowed_item`` makes the item that carries only those, with their digests for confirming.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from importer.models import ARRAYS, Item, RowRef
from importer.state.digest import ItemDigests, ObjectDigests, Occurrence

# What is left of one attributes object: None, all of it; (), nothing; else these attributes.
Sent = tuple[str, ...] | None
Positions = Sequence[int]


class Filtered(NamedTuple):  # made once per row: a frozen dataclass's __init__ cost ~1 µs
    """What is left of an item to send. ``item`` is None when nothing is: a skip, as
    ``operation_delivered`` when operations were left out, else ``unchanged``; or a failure
    when ``repeats`` names an earlier row of this run with the same ``[operations] key``."""

    item: Item | None
    attributes_unchanged: int  # attribute keys left out (operations not among them)
    events_already_sent: int  # events + purchases left out
    operations_delivered: int = 0  # operations left out: that very operation was delivered
    repeats: RowRef | None = None  # the earlier row of this run the row's operation repeats


def narrowed_item(
    item: Item, digests: ItemDigests, sent: list[Sent] | None, kept: dict[str, Positions]
) -> Item:
    """The item with only the kept objects, and only the sent attributes of narrowed ones."""
    left = item.narrowed({a: list(kept[a]) for a in ARRAYS})
    assert left is not None  # the caller keeps at least one object
    objects = [digests[0][i] for i in kept["attributes"]]
    attributes = left.attributes
    if sent is not None and any(sent):
        narrowed = list(attributes)
        for n, i in enumerate(kept["attributes"]):
            names = sent[i]
            obj = digests[0][i]
            if names and obj is not None:
                user, _, _, values = obj
                assert type(values) is dict  # what is narrowed was compared (never packed)
                narrowed[n] = {
                    k: v for k, v in attributes[n].items() if k not in values or k in names
                }
                objects[n] = (user, None, len(names), {name: values[name] for name in names})
        attributes = tuple(narrowed)
    events = tuple([digests[1][i] for i in kept["events"]])
    purchases = tuple([digests[2][i] for i in kept["purchases"]])
    return left._replace(attributes=attributes, digests=(tuple(objects), events, purchases))


def kept_positions(
    objects: tuple[ObjectDigests | None, ...],
    sent: list[Sent] | None,
    event_occs: tuple[Occurrence | None, ...],
    events: Positions | None,
    purchase_occs: tuple[Occurrence | None, ...],
    purchases: Positions | None,
) -> dict[str, Positions]:
    """The positions of each kind of object that are left, for ``narrowed_item`` (None, all of
    them, becomes a range)."""
    return {
        "attributes": (
            range(len(objects)) if sent is None else [i for i, s in enumerate(sent) if s != ()]
        ),
        "events": range(len(event_occs)) if events is None else events,
        "purchases": range(len(purchase_occs)) if purchases is None else purchases,
    }
