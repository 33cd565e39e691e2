"""The delivery state (``--state FILE``): send only what changed, never an event twice.

A SQLite file remembers, per user, a digest of each attribute value Braze confirmed and the
fingerprint of each event and purchase it confirmed. ``filter_many`` drops what was already
delivered; ``confirm`` records what Braze accepted (nothing else, so refused objects are tried
again next time). One run at a time: ``open`` takes a lock that dies with the process.

    with DeliveryState.open(Path("nightly.state"), run_label="nightly") as state:
        for filtered in state.filter_many(items):      # before packing
            ...
        state.confirm(delivered_items)                  # after Braze answered 2xx for them
        state.release(refused_items)                    # optional: frees in-flight bookkeeping
        state.record_run("nightly", summary)

Each item is handled by its digests (``item_digests``), computed here unless the item carries
them (``Item.digests``, filled where it was converted); ``record`` and ``forget`` take the
digests of confirmed or released rows directly, so confirming needs no objects at all.

What is digested and why is in ``digest``; the in-run rules in ``changes``; the file layout in
``store``; the writes in ``record``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from importer.errors import ConfigError, FatalError
from importer.filelock import FileLock, Holder
from importer.models import Item
from importer.state.changes import Delta
from importer.state.chunk_digests import bare, lacks_values, made, valued
from importer.state.digest import ItemDigests, OperationSources
from importer.state.filtered import Filtered
from importer.state.lookups import Neighbours
from importer.state.record import Confirmed, flush_deferred, record_deliveries
from importer.state.row_digests import item_digests, with_values
from importer.state.row_keys import remember, remember_vouched
from importer.state.snapshot import StateView, delivered, is_verdict, stored_users
from importer.state.store import (
    build_row_index,
    commit_number,
    connect,
    describe,
    drop_row_index,
    end_run,
    has_row_keys,
    load_names,
    start_run,
    transaction,
)
from importer.state.writes import Writes

__all__ = ["Confirmed", "DeliveryState", "Filtered", "StateView", "digests_of", "inspect_state"]

_DEFERRED_FLUSH = 10_000  # whole digests of unchanged users held in memory before writing


def digests_of(item: Item, sources: OperationSources = None) -> ItemDigests:
    """The item's digests: those it carries, or computed now (e.g. an item narrowed since)."""
    digests: ItemDigests | None = item.digests
    return item_digests(item, True, sources) if digests is None else digests


class DeliveryState:
    """An open state file, locked for this run. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: FileLock, run_id: int) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._run_id = run_id
        self._delta = Delta(load_names(conn))
        self._writes = Writes(commit_number(conn))  # judges the workers' verdicts (snapshot)
        self._keyed = has_row_keys(conn)  # StateView.keyed
        if not self._keyed:
            drop_row_index(conn)  # built as the file closes (build_row_index)
        self._users_near, self._delivered_near = Neighbours(), Neighbours()
        self._recorded_near = Neighbours()  # the users of confirmations: a stream of their own
        self._sources: OperationSources = None
        # Does ``filter_many`` hash every value of the items it makes the digests of, or only
        # of those that turn out to need them? ``DeltaStage`` sets it as it asks the workers.
        self.wants_values = False

    @property
    def operation_sources(self) -> OperationSources:
        """How rows without an [operations] key name their operations: source name -> the
        fingerprint the run recorded (importer.state.digest). None (the default): the mapping
        has no operations, and nothing is looked at as one. Set by the runner before filtering."""
        return self._sources

    @operation_sources.setter
    def operation_sources(self, sources: OperationSources) -> None:
        self._sources = sources
        self._delta.operations = sources is not None

    @property
    def sent_operations(self) -> bool:
        """Has this run sent an operation yet (``InFlight.sent_operations``)?"""
        return self._delta.sent_operations

    @classmethod
    def open(cls, path: Path, *, run_label: str) -> DeliveryState:
        """Open or create ``path`` (mode 0600) and lock it; ``Locked`` when a run holds it."""
        path = Path(path)
        if not path.parent.is_dir():
            raise ConfigError(f"state file {path}: directory {path.parent} does not exist")
        holder = Holder.this_process(run_label)
        lock = FileLock(Path(f"{path}.lock"), guarded=path, what="state file")
        try:
            lock.acquire(holder)
        except OSError as exc:
            raise ConfigError(f"state file {path}: cannot lock {lock.path}: {exc}") from None
        try:
            conn = connect(path)
            try:
                run_id = start_run(conn, holder)
                return cls(path, conn, lock, run_id)
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            lock.release()
            raise ConfigError(f"state file {path} cannot be used: {exc}") from None
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Store what is pending, close the file and release the lock. Idempotent."""
        if not self._lock.held:
            return
        try:
            self._store_pending()
        finally:
            self._conn.close()
            self._lock.release()

    def _store_pending(self) -> None:
        # Neither is needed for the next run to be right, only to be fast.
        with suppress(sqlite3.Error):  # the deferred digests
            if self._delta.deferred:
                with transaction(self._conn):
                    flush_deferred(self._conn, self._delta)
        with suppress(sqlite3.Error):  # the next connect builds it
            if not self._keyed:
                build_row_index(self._conn)

    def __enter__(self) -> DeliveryState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- filtering --------------------------------------------------------------------------

    def filter(self, item: Item) -> Filtered:
        """What is left of one item; ``filter_many`` does the same for a batch, much faster."""
        return self.filter_many((item,))[0]

    def filter_many(
        self, items: Sequence[Item], objects: Callable[[Item], Item] | None = None
    ) -> list[Filtered]:
        """Drop attributes equal to the last delivered value and events already delivered.

        Two queries per 500 users (users, then fingerprints), not one per row. Items must come
        in input order: a later row is compared with what an earlier one put in flight.

        An item may come with its digests only — no objects, not even as JSON — or with a
        conversion worker's verdict only (``StateView``); ``objects`` gives such an item its
        objects back if any of them is to be sent, or if the verdict cannot be taken (see
        ``snapshot``).
        """
        # Without digests made elsewhere, the value digests wait until an item needs them
        # unless most items do (``wants_values``): then a second pass would cost more.
        wants, in_flight = self.wants_values, self._delta.values
        items, digests = made(items, objects, wants, self._sources, in_flight, self._writes)
        with self._failing_as("reading"):
            if len(self._delta.deferred) >= _DEFERRED_FLUSH:
                with transaction(self._conn):
                    flush_deferred(self._conn, self._delta)
            near = self._users_near, self._delivered_near
            operations = self._sources is not None
            looked = [d for d in digests if not is_verdict(d)]
            rows = stored_users(self._conn, looked, near) if looked else {}
            if operations and rows:
                items, digests = valued(items, digests, rows, objects, self._sources)
                looked = [d for d in digests if not is_verdict(d)]
            known = delivered(self._conn, looked, rows, operations, near) if looked else set()
        delta = self._delta
        left = []
        for item, d in zip(items, digests, strict=True):
            if is_verdict(d):
                left.append(delta.vouched(d))
                if item.row_key is not None:  # found by its digests: its key is new
                    remember_vouched(delta, item.row_key, d)
                continue
            nothing = delta.unchanged(d, rows, known)  # a night where little changed: most
            if nothing is not None:
                left.append(nothing)
                if item.row_key is not None:
                    remember(delta, item.row_key, d, None, rows, known)
                continue
            if bare(item) and (d[0] or d[1] or d[2]):
                if objects is None:
                    raise ValueError(f"{item.ref}: an item without its objects needs objects=")
                item = objects(item)._replace(digests=d, row_key=item.row_key)
            if lacks_values(d) and delta.needs_values(d, rows):
                # No operation among them: one that carries an operation has no whole digest
                # like the stored one, so ``valued`` added its values.
                d = with_values(item, d, self._sources)
            d = delta.compared_digests(d, rows)  # a worker's Packed for a user not new here
            decided = delta.decide(item, d, rows, known)
            left.append(decided)
            if item.row_key is not None and decided.repeats is None:
                remember(delta, item.row_key, d, decided.item, rows, known)
        return left

    def compared_share(self) -> float:
        """The share of attributes objects filtered since the last call that needed their
        value digests (1 when there were none)."""
        return self._delta.compared_share()

    # --- recording --------------------------------------------------------------------------

    def confirm(self, items: Iterable[Item]) -> None:
        """Record what Braze confirmed, in one transaction (durable when this returns).

        Pass only delivered objects (filtered items as sent, or the originals: both record the
        same), in the order they were filtered — a user's later value must be confirmed last.
        """
        sources = self.operation_sources
        self.record([(item.ref, digests_of(item, sources)) for item in items])

    def record(self, confirmed: Iterable[Confirmed]) -> None:
        """``confirm`` for rows given as (ref, digests of what Braze took): one transaction."""
        with self._failing_as("recording deliveries"):
            users = record_deliveries(self._conn, self._delta, confirmed, self._recorded_near)
        if users is not None:
            self._writes.add(users)

    def release(self, items: Iterable[Item]) -> None:
        """Forget items that were filtered but will not be confirmed (refused, failed, dry run).

        Optional: without it their values stay in flight for the rest of the run, so an
        identical later row is left out too; they are still sent again next run.
        """
        sources = self.operation_sources
        self.forget((item.ref, digests_of(item, sources)) for item in items)

    def forget(self, released: Iterable[Confirmed]) -> None:
        """``release`` for rows given as (ref, digests)."""
        for ref, digests in released:
            self._delta.release(ref, digests)

    def view(self) -> StateView:
        """The state file as a conversion worker reads it (``snapshot``): a verdict for each
        row it converted that has nothing new, this state's operation sources set."""
        return StateView(self.path, self.operation_sources, self._keyed)

    # --- runs and inspection ----------------------------------------------------------------

    def record_run(self, label: str, summary: dict[str, Any]) -> None:
        """Close this run's row: its label, end time and summary counts."""
        with self._failing_as("recording the run"):
            end_run(self._conn, self._run_id, label, summary)

    def inspect(self) -> dict[str, Any]:
        """Users, attribute values (and how many unset), events, purchases, sizes, last runs."""
        with self._failing_as("inspecting"):
            return describe(self._conn, self.path)

    @contextmanager
    def _failing_as(self, action: str) -> Iterator[None]:
        """The one seam where SQLite's exceptions become ours: the run cannot go on."""
        try:
            yield
        except sqlite3.Error as exc:
            raise FatalError(f"state file {self.path}: {action} failed: {exc}") from None


def inspect_state(path: Path) -> dict[str, Any]:
    """``DeliveryState.inspect`` without taking the lock: works while a run holds the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"state file {path} does not exist")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return describe(conn, path)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"state file {path} cannot be read: {exc}") from None
