"""One attempt in its event loop: the producer feeding the workers that send, the ticker that
reports progress and flushes the state, and the end of the run (status, exit code).

The ``Engine`` (``importer.runner.engine``) produces batches and accounts for every row; this
module drives it. Reading, converting and packing run inline in the loop between awaits (a
producer thread loses to the GIL); a bounded queue gives backpressure; one TaskGroup owns the
workers, so a fatal answer cancels them all.
"""

from __future__ import annotations

import asyncio
import time

from importer.errors import EXIT_OK, AbortError, FatalError, Interrupted, RecordError
from importer.models import Batch
from importer.runner.engine import Engine
from importer.runner.report import Reporter
from importer.runner.signals import StopSignals
from importer.send import BrazeClient, Pacer, Sender, UserOrder

QUEUED_BATCHES = 4  # packed requests waiting for a worker
FIRST_WORKERS = 16  # workers beyond the requests in flight (see _send_all)


async def _send_all(engine: Engine, client: BrazeClient) -> None:
    config = engine.config
    engine.pacer = pacer = Pacer(config.rate_per_minute)
    engine.sender = sender = Sender(client, pacer, config.retry, engine.on_result)
    order = UserOrder()
    Claim = tuple[Batch, list[asyncio.Future[None]], asyncio.Future[None]]
    # A short queue: batches waiting here are memory the GC walks, and the producer refills it
    # between answers anyway (a queue of 2*concurrency cost ~15% CPU per row).
    queue: asyncio.Queue[Claim | None] = asyncio.Queue(maxsize=QUEUED_BATCHES)
    workers = 0

    async def worker() -> None:
        while (claim := await queue.get()) is not None:
            batch, earlier, mine = claim
            try:
                await order.wait(earlier)
                if not engine.stopping:
                    await sender.send(batch)
            finally:
                order.release(batch, mine)

    async with asyncio.TaskGroup() as group:
        async for batch in engine.ready_batches():
            # Keeping the pace takes rate × round trip requests in flight, so the workers
            # stay a quarter (and 16) above the requests awaiting an answer, up to
            # --concurrency: slow answers add workers, fast ones need few (idle workers are
            # not free: 250 cost ~4% more CPU per row than 100 at 50 ms).
            in_flight = sender.counters.in_flight
            wanted = min(config.concurrency, in_flight + in_flight // 4 + FIRST_WORKERS)
            while workers < wanted:
                workers += 1
                group.create_task(worker())
            await queue.put((batch, *order.claim(batch)))
        for _ in range(workers):
            await queue.put(None)


async def _ticker(engine: Engine, reporter: Reporter | None, started: float) -> None:
    while True:
        try:
            engine.flush_state()
        except FatalError as exc:  # the state file cannot be written: stop sending
            engine.abort_reason = engine.abort_reason or str(exc)
            engine.stopping = True
        engine.refresh()
        engine.stats.elapsed_s = engine.attempt.earlier_elapsed_s + time.monotonic() - started
        if reporter is not None:
            reporter.progress(engine.stats)
        await asyncio.sleep(0.25)


async def _produce_and_send(engine: Engine) -> None:
    if engine.config.dry_run:
        async for batch in engine.ready_batches():
            engine.dry_result(batch)
            await asyncio.sleep(0)
        return
    config = engine.config
    async with BrazeClient(
        config.endpoint,
        config.api_key,
        concurrency=config.concurrency,
        timeout_s=config.retry.request_timeout_s,
    ) as client:
        await _send_all(engine, client)
    engine.flush_state()


async def run_engine(
    engine: Engine, reporter: Reporter | None, signals: StopSignals | None
) -> str | None:
    """Run to the end; return an abort message, or None."""
    started = time.monotonic()
    ticker = asyncio.create_task(_ticker(engine, reporter, started))
    main = asyncio.current_task()
    if signals is not None and main is not None:
        signals.attach(engine.request_stop, main)
    abort: str | None = None
    try:
        await _produce_and_send(engine)
    except* FatalError as group:  # AbortError, or the state failing mid-run
        abort = str(group.exceptions[0])
    except* asyncio.CancelledError:
        pass  # a second signal, or the drain timeout: the journal is already complete
    finally:
        try:
            engine.flush_state()  # what was answered before a stop or an abort
        except FatalError as exc:
            abort = abort or str(exc)
        engine.close()
        if signals is not None:
            signals.detach()
        ticker.cancel()
        engine.refresh()
        engine.stats.elapsed_s = engine.attempt.earlier_elapsed_s + time.monotonic() - started
    return abort or engine.abort_reason


def final_status(engine: Engine, abort: str | None) -> tuple[str, int]:
    if abort is not None or engine.abort_reason is not None:
        return "aborted", AbortError.exit_code
    if engine.stopping:
        return "interrupted", Interrupted.exit_code
    code = RecordError.exit_code if engine.stats.failed else EXIT_OK
    if engine.config.dry_run:
        return "dry-run", code
    return ("partial" if code else "complete"), code


def loop_runner() -> asyncio.Runner:
    """uvloop when installed (5-8% end to end, docs/performance.md), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
