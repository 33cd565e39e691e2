"""Send only what changed (``--state``): the stage between converter and packer.

Rows are filtered against the delivery state in chunks (one query per chunk, not per row);
what Braze confirmed is recorded when its answer arrives, never before — a refused or failed
object is tried again next night.

Confirmations are batched: ``answered`` queues what an answer confirmed, and ``flush`` records
everything queued in one transaction, then runs each answer's ``then`` (the engine writes its
journal lines there) in the order the answers came. So the state is committed before the journal
says those rows were delivered: killed in between, resume re-reads the rows and the state leaves
them out; the other order would let a later night send them again. Until recorded, confirmed
objects stay in flight, so a later row repeating them is still left out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from importer.models import ARRAYS, Batch, Item, RowFailure, RowRef, RowSkipped
from importer.send import BatchResult
from importer.state.delivery import Confirmed, DeliveryState, digests_of
from importer.state.digest import ItemDigests, OperationSources, operations_of

CHUNK = 500
# Items come with their value digests (``item_digests(values=True)``, in the conversion workers)
# while at least this share of recent attributes objects needed them: below it, computing the
# few here costs the main process less than the workers would spend on every row.
VALUES_WANTED = 0.2
# Confirmed rows queued before ``answered`` records them itself, between the engine's flushes:
# ~30 ms of answers at Braze's rate, so a killed run has little to send again, while a
# transaction's fixed cost is shared by ~27 requests.
FLUSH_ROWS = 2_000


@dataclass(slots=True)
class DeltaCounts:
    attributes_unchanged: int = 0
    events_already_sent: int = 0


def _row_digests(batch: Batch, sources: OperationSources) -> Sequence[ItemDigests]:
    """Each row's digests: those the packer kept, else computed from the decoded rows."""
    digests = batch.digests
    if digests and None not in digests:
        return digests
    return [digests_of(item, sources) for item in batch.items()]


def _selected(digests: ItemDigests, positions: dict[str, list[int]]) -> ItemDigests:
    """The digests of the objects at ``positions`` (per array), as ``Item.narrowed`` keeps them."""
    return (
        tuple([digests[0][i] for i in positions.get("attributes", ())]),
        tuple([digests[1][i] for i in positions.get("events", ())]),
        tuple([digests[2][i] for i in positions.get("purchases", ())]),
    )


def taken(
    result: BatchResult, sources: OperationSources = None
) -> tuple[list[Confirmed], list[Confirmed]]:
    """What Braze took of a request's rows (in row order), and what it did not; ``sources`` as
    ``DeliveryState.operation_sources``."""
    batch = result.batch
    digests = _row_digests(batch, sources)
    refs = batch.refs
    if not result.failures:  # the common case: rows in order, all of them taken
        return [(refs[n], digests[n]) for n in result.delivered], []
    confirmed = {n: (refs[n], digests[n]) for n in result.delivered}
    released: list[Confirmed] = []
    row_of = {ref: n for n, ref in enumerate(refs)}
    for failure in result.failures:
        n = row_of.get(failure.ref)
        if n is None:
            continue
        refused = failure.refused
        if not refused:
            released.append((failure.ref, digests[n]))
            continue
        accepted: dict[str, list[int]] = {
            a: [i for i in range(len(digests[n][k])) if i not in refused.get(a, ())]
            for k, a in enumerate(ARRAYS)
        }
        if any(accepted.values()):
            confirmed[n] = (failure.ref, _selected(digests[n], accepted))
        released.append((failure.ref, _selected(digests[n], refused)))
    return [confirmed[n] for n in sorted(confirmed)], released


def _carries_operations(confirmed: list[Confirmed]) -> bool:
    for _, digests in confirmed:
        for obj in digests[0]:
            if obj is not None and operations_of(obj):
                return True
    return False


def _repeated_key(item: Item, earlier: RowRef) -> RowFailure:
    """A row whose operation an earlier row of this run already sent: two rows with one
    ``[operations] key`` are a data error (sending both, or one silently, loses a change)."""
    key = f"[operations] key {item.operations!r}" if item.operations is not None else "operation"
    return RowFailure(
        ref=item.ref,
        stage="validate",
        error="duplicate_operation_key",
        message=f"the {key} was already used by {earlier.source} line {earlier.line} of "
        "this run: this row is not sent; give each transaction its own key",
        record=item.record,
    )


class DeltaStage:
    """``objects``: how an item that came with its digests only gets its objects back (the
    engine converts its record again); needed once ``wants_values`` is False and the engine
    then leaves the objects out (see ``DeliveryState.filter_many``)."""

    def __init__(self, state: DeliveryState, objects: Callable[[Item], Item] | None = None) -> None:
        self.state = state
        self.objects = objects
        self.counts = DeltaCounts()
        self._queued: list[Confirmed] = []  # confirmed, not yet recorded
        self._compared = 1.0  # share of recent objects that needed value digests, smoothed
        # What the engine passes to ``item_digests`` for the rows it converts next. False: most
        # rows are unchanged, so their objects may be left out too (``objects``).
        self.wants_values = state.wants_values = True  # the state's own digests alike
        self._thens: deque[Callable[[], None]] = deque()  # waiting for the queue's commit

    def filter(
        self, outcomes: Iterable[Item | RowSkipped]
    ) -> Iterator[Item | RowSkipped | RowFailure]:
        """Items with unchanged attributes and already-sent events removed; an item with nothing
        left becomes a skip (``unchanged``, or ``operation_delivered`` when it carried delivered
        operations), a repeated ``[operations] key`` a failure. Skips pass through in order."""
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

    def _filtered(self, chunk: list[Item]) -> Iterator[Item | RowSkipped | RowFailure]:
        counts = self.counts
        decided = self.state.filter_many(chunk, self.objects)
        self._compared = (self._compared + self.state.compared_share()) / 2
        self.wants_values = self.state.wants_values = self._compared >= VALUES_WANTED
        for item, left in zip(chunk, decided, strict=True):
            if left.item is not None and left.item is item:
                yield item
                continue
            counts.attributes_unchanged += left.attributes_unchanged
            counts.events_already_sent += left.events_already_sent
            if left.item is not None:
                yield left.item
            elif left.repeats is not None:
                yield _repeated_key(item, left.repeats)
            else:
                reason = "operation_delivered" if left.operations_delivered else "unchanged"
                yield RowSkipped(item.ref, reason)

    def answered(self, result: BatchResult, then: Callable[[], None] | None = None) -> None:
        """Queue what Braze took, to be recorded by the next ``flush``; forget at once what it
        did not (tried again next run). ``then`` runs once the state has committed this answer,
        after the ``then`` of every earlier answer. Without a ``then``, records at once."""
        operations = False
        if result.delivered or result.failures:  # else e.g. split: its halves answer for it
            confirmed, released = taken(result, self.state.operation_sources)
            if released:
                self.state.forget(released)
            self._queued += confirmed
            operations = self.state.sent_operations and _carries_operations(confirmed)
        if then is None:
            self.flush()
        elif not self._queued and not self._thens:
            then()
        else:
            self._thens.append(then)
            # Operations are committed with their answer: killed later, none of them is sent
            # again, so only requests still in flight at a kill can apply one twice.
            if operations or len(self._queued) >= FLUSH_ROWS:
                self.flush()

    def flush(self) -> None:
        """Record every queued confirmation in one transaction, then run the waiting thens.

        Raises ``FatalError`` when the state file cannot be written; the queue is kept, and no
        ``then`` runs for it.
        """
        if self._queued:
            self.state.record(self._queued)
            self._queued = []
        thens = self._thens
        while thens:
            thens.popleft()()  # one at a time: if one raises, the later ones still wait

    @property
    def pending(self) -> int:
        """Answers whose ``then`` waits for a flush."""
        return len(self._thens)

    def unsent(self, items: Iterable[Item]) -> None:
        self.state.release(items)
