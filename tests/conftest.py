"""Shared fixtures: a Braze-compatible sandbox on 127.0.0.1, running in a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import settings

from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread

# No per-example deadline: on a shared, loaded machine an example compiling a mapping took 281 ms
# against hypothesis' 200 ms and failed a run that was correct. Slowness is the benchmarks' job.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox with default settings (key ``sandbox-key``, legacy limits, no faults)."""
    with sandbox_in_thread(SandboxSettings()) as running:
        yield running


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory: ``make_sandbox(latency_ms=50, p_500=0.2, seed=1)``; all are closed at teardown."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> Sandbox:
            return stack.enter_context(sandbox_in_thread(SandboxSettings(**overrides)))

        yield make
