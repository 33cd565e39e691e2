"""Send only what changed (``--state``): the stage between converter and packer.

Rows are filtered against the delivery state in chunks (one query per chunk, not per row);
what Braze confirmed is recorded when its answer arrives, never before — a refused or failed
object is tried again next night.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from importer.models import ARRAYS, Item, RowFailure, RowSkipped
from importer.send import BatchResult
from importer.state.delivery import DeliveryState

CHUNK = 500


@dataclass(slots=True)
class DeltaCounts:
    attributes_unchanged: int = 0
    events_already_sent: int = 0


def accepted_part(item: Item, failure: RowFailure) -> Item | None:
    """The objects of ``item`` Braze accepted when it refused the others (``failure.refused``)."""
    if not failure.refused:
        return None
    kept: dict[str, list[int]] = {
        a: [i for i in range(len(getattr(item, a))) if i not in failure.refused.get(a, ())]
        for a in ARRAYS
    }
    return item.narrowed(kept)


class DeltaStage:
    def __init__(self, state: DeliveryState) -> None:
        self.state = state
        self.counts = DeltaCounts()

    def filter(self, outcomes: Iterable[Item | RowSkipped]) -> Iterator[Item | RowSkipped]:
        """Items with unchanged attributes and already-sent events removed; an item with nothing
        left becomes a skip (reason ``unchanged``). Skips pass through in order."""
        chunk: list[Item] = []
        for outcome in outcomes:
            if isinstance(outcome, Item):
                chunk.append(outcome)
                if len(chunk) >= CHUNK:
                    yield from self._filtered(chunk)
                    chunk = []
            else:
                yield outcome
        if chunk:
            yield from self._filtered(chunk)

    def _filtered(self, chunk: list[Item]) -> Iterator[Item | RowSkipped]:
        for item, left in zip(chunk, self.state.filter_many(chunk), strict=True):
            self.counts.attributes_unchanged += left.attributes_unchanged
            self.counts.events_already_sent += left.events_already_sent
            yield left.item if left.item is not None else RowSkipped(item.ref, "unchanged")

    def answered(self, result: BatchResult) -> None:
        """Record what Braze took; forget what it did not (tried again next run)."""
        if not (result.delivered or result.failures):
            return  # e.g. a request split in two: its halves answer for its rows
        items = result.batch.items()
        confirmed = [items[row] for row in result.delivered]
        released = []
        by_ref = {item.ref: item for item in items}
        for failure in result.failures:
            item = by_ref.get(failure.ref)
            if item is None:
                continue
            accepted = accepted_part(item, failure)
            if accepted is not None:
                confirmed.append(accepted)
            refused = item.narrowed(failure.refused) if failure.refused else item
            if refused is not None:
                released.append(refused)
        if confirmed:
            order = {item.ref: n for n, item in enumerate(items)}
            self.state.confirm(sorted(confirmed, key=lambda i: order[i.ref]))
        if released:
            self.state.release(released)

    def unsent(self, items: Iterable[Item]) -> None:
        self.state.release(items)
