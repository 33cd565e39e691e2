"""A local Braze-compatible ``POST /users/track`` server for tests, the demo and the benchmark.

It behaves as docs/braze.md, What the sandbox emulates, describes: bearer auth, content type, the
4 MB body limit, the object limits of a batch mode, per-object validation answered in ``errors[]``,
201 on success, rate limits with Braze's headers, and optional faults (429, 500/503, dropped
connections, slow answers). It also watches per-user ordering: a user's attributes in two requests
in flight at once are counted in ``Sandbox.stats``.

    with sandbox_in_thread(SandboxSettings(latency_ms=50)) as sandbox:
        ...  # run an import against sandbox.url with key "sandbox-key"
        assert sandbox.stats.user_overlaps == 0
"""

from __future__ import annotations

from importer.sandbox.profiles import Profile, Profiles
from importer.sandbox.server import Sandbox, sandbox_in_thread, serve_forever, start_sandbox
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.stats import SandboxStats

__all__ = [
    "Profile",
    "Profiles",
    "Sandbox",
    "SandboxSettings",
    "SandboxStats",
    "sandbox_in_thread",
    "serve_forever",
    "start_sandbox",
]
