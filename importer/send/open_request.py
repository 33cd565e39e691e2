"""The request being filled (``OpenRequest``) -> ``Batch``: its fragments joined into one body.

The packer (importer.send.packer) decides which rows go in; this holds what it put there and,
once the request is full, makes the ``Batch``: the body joined once, each object's owner, the
rows' columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from importer.models import ARRAYS, Batch, BrazeObject, Item

# Each array's opening in a body: first, or after another array.
_OPENERS = tuple((b'{"' + a.encode() + b'":[', b',"' + a.encode() + b'":[') for a in ARRAYS)
# {"attributes":[...],"events":[...],"purchases":[...]} around the fragments.
ENVELOPE_BYTES = len(b'{"attributes":[],"events":[],"purchases":[]}')


@dataclass(slots=True)
class OpenRequest:
    """The request being filled (objects per array: the lengths of ``owners``)."""

    items: list[Item] = field(default_factory=list)
    fragments: tuple[list[bytes], ...] = field(default_factory=lambda: ([], [], []))
    owners: tuple[list[int], ...] = field(default_factory=lambda: ([], [], []))
    total: int = 0
    size: int = ENVELOPE_BYTES
    attribute_of_user: dict[str, int] = field(default_factory=dict)  # user -> attributes index
    merged: dict[int, list[int]] = field(default_factory=dict)  # attributes index -> more owners
    own_attributes: dict[int, tuple[BrazeObject, ...]] = field(default_factory=dict)
    # attributes index -> the object its owners combined into so far (the packer's ``_combined``)
    combined: dict[int, BrazeObject] = field(default_factory=dict)


def _body(fragments: tuple[list[bytes], ...]) -> bytes:
    """The request's JSON from its fragments, joined once (concatenating each array's join into
    the next copied the body five times)."""
    parts: list[bytes] = []
    for openers, frags in zip(_OPENERS, fragments, strict=True):
        if frags:
            parts += (openers[bool(parts)], b",".join(frags), b"]")
    if not parts:
        return b"{}"
    parts.append(b"}")
    return b"".join(parts)


def closed(batch: OpenRequest, number: int, part: str = "") -> Batch:
    """The full request as the ``Batch`` numbered ``number`` (``part``: which half of a split)."""
    owners: dict[str, tuple[int, ...]] = {
        a: tuple(own) for a, own in zip(ARRAYS, batch.owners, strict=True) if own
    }
    # The items' fields as columns in one pass: refs, records, users, …, digests.
    refs, records, users, _, _, _, digests, *_ = zip(*batch.items, strict=True)
    return Batch(
        number=number,
        refs=refs,
        records=records,
        users=users,
        body=_body(batch.fragments),
        owners=owners,
        part=part,
        merged={index: tuple(more) for index, more in batch.merged.items()},
        own_attributes=batch.own_attributes,
        attribute_users=frozenset(batch.attribute_of_user),
        digests=digests if any(digests) else (),
    )
