"""The run directory: ``run.json``, ``results.jsonl``, ``failures.jsonl``, ``summary.json``.

``journal`` writes it as a run goes; ``manifest`` is what ``run.json`` holds and the checks a
resume makes against it; ``outcomes`` reads back which records are settled; ``failures`` turns a
parent run's failures into the source of a ``retry``; ``reopen`` reads a run's sources again
(``resume``, ``verify``).
"""

from importer.rundir.failures import FailureSource, RetryConverter, parent_failures
from importer.rundir.journal import Journal, default_run_dir, utc_stamp, write_error_log
from importer.rundir.manifest import (
    check_mapping,
    config_from,
    operation_sources,
    settings_of,
    source_entry,
    unchanged_source,
)
from importer.rundir.outcomes import RecordedOutcomes, read_jsonl, read_manifest, read_outcomes
from importer.rundir.reopen import (
    close_all,
    converters_for,
    read_options,
    reopen_files,
    reopen_retry,
)

__all__ = [
    "FailureSource",
    "Journal",
    "RecordedOutcomes",
    "RetryConverter",
    "check_mapping",
    "close_all",
    "config_from",
    "converters_for",
    "default_run_dir",
    "operation_sources",
    "parent_failures",
    "read_jsonl",
    "read_manifest",
    "read_options",
    "read_outcomes",
    "reopen_files",
    "reopen_retry",
    "settings_of",
    "source_entry",
    "unchanged_source",
    "utc_stamp",
    "write_error_log",
]
