"""Running a sandbox: in the current loop, in a background thread, or as the CLI's server."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from aiohttp import web

from importer.config import MAX_BODY_BYTES
from importer.errors import ConfigError
from importer.models import BrazeObject
from importer.sandbox.app import TrackApp
from importer.sandbox.profiles import Profiles
from importer.sandbox.record import Recorder
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.stats import SandboxStats, StatsBook

_SHUTDOWN_S = 1.0  # requests still in flight at close get this long to finish


class Sandbox:
    """A running sandbox. ``url`` is its base URL (``http://127.0.0.1:<port>``)."""

    def __init__(
        self,
        settings: SandboxSettings,
        url: str,
        runner: web.AppRunner,
        app: TrackApp,
        book: StatsBook,
        recorder: Recorder | None,
    ) -> None:
        self.settings = settings
        self.url = url
        self._runner = runner
        self._app = app
        self._book = book
        self._recorder = recorder

    @property
    def stats(self) -> SandboxStats:
        return self._book.snapshot()

    def accepted(self, array: str) -> list[BrazeObject]:
        """Objects accepted so far in ``array`` (needs ``keep_in_memory``), in arrival order."""
        return list(self._app.accepted[array])

    @property
    def profiles(self) -> Profiles:
        """The profiles built from every accepted object (``settings.profiles``). Change them only
        while no request is being answered (a test altering what Braze holds)."""
        return self._app.profiles

    def lost_attributes(self) -> dict[str, str]:
        """The ``p_lose_attribute`` fault so far: user -> the attribute left out of exports."""
        return dict(self._app.exporter.lost)

    async def close(self) -> None:
        await self._runner.cleanup()
        if self._recorder is not None:
            self._recorder.close()


async def start_sandbox(settings: SandboxSettings | None = None) -> Sandbox:
    """Start listening in the running event loop and return once the port is bound."""
    settings = settings or SandboxSettings()
    recorder = Recorder(settings.record_dir) if settings.record_dir is not None else None
    book = StatsBook()
    track = TrackApp(settings, book, recorder)
    # One byte over the limit, so that a body of exactly 4 MB is still read and accepted.
    web_app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    web_app.router.add_route("*", "/{tail:.*}", track.handle)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=_SHUTDOWN_S)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if recorder is not None:
            recorder.close()
        raise ConfigError(
            f"sandbox cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from exc
    host, port = runner.addresses[0][:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return Sandbox(settings, url, runner, track, book, recorder)


@contextmanager
def sandbox_in_thread(settings: SandboxSettings | None = None) -> Iterator[Sandbox]:
    """Run a sandbox on its own event loop in a daemon thread (for synchronous callers)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="braze-sandbox", daemon=True)
    thread.start()
    try:
        sandbox = asyncio.run_coroutine_threadsafe(start_sandbox(settings), loop).result()
        try:
            yield sandbox
        finally:
            asyncio.run_coroutine_threadsafe(sandbox.close(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def serve_forever(
    settings: SandboxSettings,
    on_ready: Callable[[str], None],
    on_stop: Callable[[SandboxStats], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then close cleanly. Calls ``on_ready(url)`` once bound
    and ``on_stop(stats)`` once closed (a benchmark's only view into a server process)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        stats = runner.run(_serve(settings, on_ready))
    if on_stop is not None:
        on_stop(stats)


async def _serve(settings: SandboxSettings, on_ready: Callable[[str], None]) -> SandboxStats:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    sandbox = await start_sandbox(settings)
    try:
        on_ready(sandbox.url)
        await stop.wait()
    finally:
        await sandbox.close()
        for sig in signals:
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    return sandbox.stats


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the ``fast`` extra): the benchmark's server must not be the limit."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
