"""Item -> its objects as JSON fragments (``Serialised``): what the packer puts in a body.

Every object is serialised once (orjson), where the item is packed or, by ``serialised`` and
``wire_of``, where it was made (a worker process: the item then carries ``Item.wire``, the
fragments alone). The packer (importer.send.packer) only joins fragments, so it knows a
request's size before its body exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from importer.models import BrazeObject, Item, Wire

Fragments = Sequence[bytes]
NO_FRAGMENTS: Fragments = ()


def serialised(item: Item) -> Item:
    """``item`` carrying only its objects as JSON (``Item.wire``): the bytes the packer would
    otherwise make in the main process."""
    return item._replace(attributes=(), events=(), purchases=(), wire=wire_of(item))


def wire_of(item: Item, attributes: tuple[bytes, ...] | None = None) -> Wire:
    """``item``'s objects as JSON, per array: what a worker process hands back as the item's
    ``wire``, without the new Item ``serialised`` makes (``_replace`` cost a worker ~1 µs a
    row, ~40% of serialising a mapped row). ``attributes``: the attributes objects' JSON
    made already (``attributes_json``)."""
    dumps = orjson.dumps
    return (
        tuple(map(dumps, item.attributes)) if attributes is None else attributes,
        tuple(map(dumps, item.events)),
        tuple(map(dumps, item.purchases)),
    )


def attributes_json(item: Item) -> tuple[bytes, ...] | None:
    """The attributes objects' JSON as ``wire_of`` makes it, made before the state's digests
    so that each object is serialised once (``state.item_digests`` hashes these very bytes
    for its whole digest); None when one is not JSON (``wire_of`` raises for it later, as it
    did before, and the state makes its digests as without)."""
    try:
        return tuple(map(orjson.dumps, item.attributes))
    except orjson.JSONEncodeError:
        return None


def _dump(objects: tuple[BrazeObject, ...]) -> tuple[Fragments, int]:
    """The objects as JSON fragments, and their size with one comma each (an upper bound on
    the separators they add). A mapped row has at most one object per array: the fast path."""
    if len(objects) == 1:
        fragment = orjson.dumps(objects[0])
        return (fragment,), len(fragment) + 1
    if not objects:
        return NO_FRAGMENTS, 0
    fragments = [orjson.dumps(o) for o in objects]
    return fragments, sum(map(len, fragments)) + len(fragments)


class Serialised:
    """One item's objects as JSON fragments, per array in ARRAYS order."""

    __slots__ = ("counts", "fragments", "size", "total")

    def __init__(self, item: Item) -> None:
        wire = item.wire
        if wire is None:
            attributes, size_a = _dump(item.attributes)
            events, size_e = _dump(item.events)
            purchases, size_p = _dump(item.purchases)
            self.size = size_a + size_e + size_p
        else:  # serialised by a worker process
            attributes, events, purchases = wire
            self.size = sum(map(len, attributes)) + sum(map(len, events)) + sum(map(len, purchases))
            self.size += len(attributes) + len(events) + len(purchases)
        self.fragments = (attributes, events, purchases)
        self.counts = counts = (len(attributes), len(events), len(purchases))
        self.total = counts[0] + counts[1] + counts[2]

    def without_attributes(self) -> Serialised:
        """The same item once its attributes object was merged into another row's."""
        rest = Serialised.__new__(Serialised)
        rest.fragments = (NO_FRAGMENTS, self.fragments[1], self.fragments[2])
        rest.counts = (0, self.counts[1], self.counts[2])
        rest.total = rest.counts[1] + rest.counts[2]
        rest.size = sum(len(f) + 1 for frags in rest.fragments for f in frags)
        return rest
