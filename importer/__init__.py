"""braze-importer: move legacy CSV/JSONL exports into Braze through POST /users/track.

The library API; the ``braze-import`` command is a thin shell over it::

    from importer import ImportConfig, run_import
    report = run_import(ImportConfig(sources=("users.csv",), endpoint=..., api_key=...))
"""

from importer.config import BatchLimits, ImportConfig, ReadOptions, RetryPolicy, resolve_endpoint
from importer.errors import (
    AbortError,
    ConfigError,
    FatalError,
    ImporterError,
    InputError,
    Interrupted,
    MappingError,
    RateLimited,
    RecordError,
    RetryableError,
    TransientError,
    Unreachable,
)
from importer.models import ImportStats

__all__ = [
    "AbortError",
    "BatchLimits",
    "ConfigError",
    "FatalError",
    "ImportConfig",
    "ImportStats",
    "ImporterError",
    "InputError",
    "Interrupted",
    "MappingError",
    "RateLimited",
    "ReadOptions",
    "RecordError",
    "RetryPolicy",
    "RetryableError",
    "TransientError",
    "Unreachable",
    "resolve_endpoint",
    "resume_import",
    "retry_import",
    "run_import",
]


def __getattr__(name: str) -> object:
    # The entry points pull in aiohttp; import them on first use so `--help` stays fast.
    if name in ("run_import", "resume_import", "retry_import"):
        from importer.runner import entry as runs

        return getattr(runs, name)
    raise AttributeError(name)
