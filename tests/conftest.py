"""Shared fixtures: a Braze-compatible sandbox on 127.0.0.1, running in a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread


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
