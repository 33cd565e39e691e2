"""The run directory: ``run.json``, ``results.jsonl``, ``failures.jsonl``, ``summary.json``.

``journal`` writes it as a run goes; ``manifest`` is what ``run.json`` holds and the checks a
resume makes against it; ``outcomes`` reads back which records are settled; ``failures`` turns a
parent run's failures into the source of a ``retry``.
"""

from importer.rundir.failures import FailureSource, RetryConverter, parent_failures
from importer.rundir.journal import Journal, default_run_dir
from importer.rundir.manifest import (
    check_mapping,
    config_from,
    settings_of,
    source_entry,
    unchanged_source,
)
from importer.rundir.outcomes import RecordedOutcomes, read_manifest, read_outcomes

__all__ = [
    "FailureSource",
    "Journal",
    "RecordedOutcomes",
    "RetryConverter",
    "check_mapping",
    "config_from",
    "default_run_dir",
    "parent_failures",
    "read_manifest",
    "read_outcomes",
    "settings_of",
    "source_entry",
    "unchanged_source",
]
