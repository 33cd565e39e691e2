"""SIGINT/SIGTERM during an attempt: drain once, stop at once on the second signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

log = logging.getLogger("importer")
DRAIN_TIMEOUT_S = 30.0  # after a stop signal, how long requests in flight may take to finish


class StopSignals:
    """SIGINT/SIGTERM for the whole attempt, before, during and after the event loop.

    First signal: stop reading, let requests in flight finish (at most DRAIN_TIMEOUT_S), write
    the logs and summary. Second: stop at once. A signal before the engine starts means it
    sends nothing. Python-level handlers (not loop.add_signal_handler) leave no gap in which a
    signal would become a KeyboardInterrupt and skip the summary.
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, object] = {}
        self._on_signal: Callable[[], None] | None = None

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self._on_signal is not None:
            self._on_signal()

    def attach(self, request_stop: Callable[[], bool], main: asyncio.Task[None]) -> None:
        """Route signals to the running attempt: ``request_stop()`` starts draining (False when
        it already was), ``main`` is cancelled on the second signal or after the drain."""
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if self.count >= 2:
                main.cancel()  # second signal: stop at once
                return
            if request_stop():
                log.warning("stopping: finishing requests in flight (signal again to stop now)")
                loop.call_later(DRAIN_TIMEOUT_S, main.cancel)

        def wake() -> None:
            loop.call_soon_threadsafe(stop)

        self._on_signal = wake
        if self.count:
            stop()

    def detach(self) -> None:
        self._on_signal = None
