"""braze-importer: move legacy CSV/JSONL exports into Braze through POST /users/track.

The library API; the ``braze-import`` command is a thin shell over it::

    from importer import ImportConfig, run_import
    report = run_import(ImportConfig(sources=("users.csv",), endpoint=..., api_key=...))

Everything a caller passes to these functions or gets back is exported here; the stages behind
them (``importer.read``, ``importer.mapping``, ...) are described in docs/architecture.md.
"""

from typing import TYPE_CHECKING

from importer.config import VERSION as __version__  # noqa: F401 - written there (pyproject.toml)
from importer.config import BatchLimits, ImportConfig, ReadOptions, RetryPolicy, resolve_endpoint
from importer.errors import (
    EXIT_MEANINGS,
    EXIT_OK,
    AbortError,
    ConfigError,
    FatalError,
    ImporterError,
    InputError,
    InternalError,
    Interrupted,
    Locked,
    MappingError,
    RateLimited,
    RecordError,
    RetryableError,
    SourceLost,
    StorageError,
    TransientError,
    Unreachable,
)
from importer.models import ImportStats

if TYPE_CHECKING:  # at run time these come on first use: the runner pulls in aiohttp
    from importer.runner import Reporter, RunReport, resume_import, retry_import, run_import
    from importer.verify import VerifyReport, VerifyReporter, verify_run

__all__ = [
    "EXIT_MEANINGS",
    "EXIT_OK",
    "AbortError",
    "BatchLimits",
    "ConfigError",
    "FatalError",
    "ImportConfig",
    "ImportStats",
    "ImporterError",
    "InputError",
    "InternalError",
    "Interrupted",
    "Locked",
    "MappingError",
    "RateLimited",
    "ReadOptions",
    "RecordError",
    "Reporter",
    "RetryPolicy",
    "RetryableError",
    "RunReport",
    "SourceLost",
    "StorageError",
    "TransientError",
    "Unreachable",
    "VerifyReport",
    "VerifyReporter",
    "resolve_endpoint",
    "resume_import",
    "retry_import",
    "run_import",
    "verify_run",
]

_FROM_RUNNER = ("Reporter", "RunReport", "resume_import", "retry_import", "run_import")
_FROM_VERIFY = ("VerifyReport", "VerifyReporter", "verify_run")


def __getattr__(name: str) -> object:
    # The runner pulls in aiohttp; import it on first use so `--help` stays fast.
    if name in _FROM_RUNNER:
        from importer import runner

        return getattr(runner, name)
    if name in _FROM_VERIFY:
        from importer import verify

        return getattr(verify, name)
    raise AttributeError(f"module 'importer' has no attribute {name!r}")
