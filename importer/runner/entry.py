"""The three ways to start an attempt: ``run_import``, ``resume_import``, ``retry_import``.

Each prepares everything that can fail before a byte is sent (exit 2) and writes the manifest;
``importer.runner.execute`` runs the attempt and writes the summary. ``run.json``
(``importer.rundir.manifest``) holds what a resume needs to redo the same run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from importer.config import ImportConfig
from importer.errors import ConfigError
from importer.filelock import utc_now
from importer.mapping import CompiledMapping, load_mapping
from importer.models import RowConverter, RowSource
from importer.read import Location, Source, check_shown_apart, expand, open_source, redact_urls
from importer.rundir import (
    FailureSource,
    Journal,
    RetryConverter,
    check_mapping,
    close_all,
    config_from,
    converters_for,
    default_run_dir,
    operation_sources,
    parent_failures,
    read_manifest,
    read_options,
    read_outcomes,
    reopen_files,
    reopen_retry,
    settings_of,
    source_entry,
)
from importer.runner.attempt import Attempt
from importer.runner.execute import execute_attempt
from importer.runner.pool import ConvertPool
from importer.runner.report import Reporter, RunReport
from importer.runner.worker import ConverterSpec
from importer.state import DeliveryState


def _wire(config: ImportConfig) -> bool:
    """Whether an attempt's converters, here and in its workers, make a CSV row's objects as
    JSON only (``Converter.to_wire``): without --state its items go straight to the packer,
    which takes bytes; --state reads the objects."""
    return config.state_path is None


def _specs(
    sources: Sequence[Source], mapping: CompiledMapping | None, wire: bool
) -> list[ConverterSpec]:
    """How worker processes build the same converters (importer.runner.pool)."""
    return [ConverterSpec.of(mapping, source.name, source.header, wire=wire) for source in sources]


def _early_pool(config: ImportConfig, sizes: Iterable[int | None]) -> ConvertPool | None:
    """The conversion workers, started before the sources are opened (see ``ConvertPool``)
    when the engine will convert in them; ``sizes``: the sources' as known before opening."""
    total: int | None = 0
    for size in sizes:
        total = None if size is None or total is None else total + size
    return ConvertPool.started(config.workers, total)


def _size(location: Location) -> int | None:
    """A source's size before it is opened (None: unknown, as ``open_source`` leaves it)."""
    if location.remote or location.name == "-":
        return location.size
    try:
        info = os.stat(location.name)
    except OSError:
        return None  # opening it fails too (exit 2)
    return info.st_size if stat.S_ISREG(info.st_mode) else None


log = logging.getLogger("importer")

_REPEATING = frozenset({"inc", "add", "remove"})  # operations that change a profile again


def _operation_sources(
    config: ImportConfig, mapping: CompiledMapping | None, recorded: dict[str, str | None]
) -> dict[str, str] | None:
    """What ``--state`` names rows' operations by (``DeliveryState.operation_sources``); None
    when no row can carry one. Objects taken as they are (no mapping) and json fields can
    carry them as much as an ``op`` can. Without an ``[operations] key``, a source with no
    recorded fingerprint (stdin, an object without a version) would have its rows' declared
    operations sent and never remembered, so applied again by the next run or retry: refused
    before sending."""
    named = {name: found for name, found in recorded.items() if found is not None}
    if mapping is None:
        return named
    if not mapping.may_carry_operations:
        return None
    repeating = any(f.op in _REPEATING for f in mapping.attributes)
    if config.state_path is not None and mapping.operations_key is None and repeating:
        unnamed = [name for name, found in recorded.items() if found is None]
        if unnamed:
            raise ConfigError(
                f"--state cannot remember the operations (inc, add, remove) of rows read from "
                f"{', '.join(unnamed)}: it has no fingerprint (stdin, or an object without a "
                "version), so a rerun or retry would apply them again; give the mapping an "
                "[operations] key column, or import from a file"
            )
        log.warning(
            "the mapping's operations (inc, add, remove) have no [operations] key: --state "
            "names them by their source's fingerprint and line, so an edited or re-exported "
            "file applies them again; fix failed rows with retry, not by running the file again"
        )
    return named


def _start(
    config: ImportConfig,
    sources: list[RowSource],
    converters: list[RowConverter],
    extra: dict[str, Any],
    reporter: Reporter | None,
    handle_signals: bool,
    specs: list[ConverterSpec] | None = None,
    mapping: CompiledMapping | None = None,
    pool: ConvertPool | None = None,
) -> RunReport:
    """``extra``: more of run.json; a retry's holds its parent's ``operation_sources``."""
    run_dir = config.run_dir or default_run_dir()
    manifest = {
        "command": [redact_urls(arg) for arg in config.command],  # no URL's credentials
        "settings": settings_of(config),
        "sources": [source_entry(s) for s in sources],
        "status": "running",
        "started_at": utc_now(),
        **extra,
    }
    manifest["operation_sources"] = operation_sources(manifest)
    named = _operation_sources(config, mapping, manifest["operation_sources"])
    with contextlib.ExitStack() as stack:
        state = _open_state(config, run_dir, stack)  # before the run directory: exit 2 if busy
        journal = stack.enter_context(Journal.create(run_dir, manifest))
        attempt = Attempt(
            config,
            sources,
            converters,
            state=state,
            specs=specs,
            operation_sources=named,
            pool=pool,
        )
        return execute_attempt(attempt, journal, manifest, reporter, handle_signals)


def _open_state(
    config: ImportConfig, run_dir: Path, stack: contextlib.ExitStack
) -> DeliveryState | None:
    if config.state_path is None:
        return None
    return stack.enter_context(DeliveryState.open(config.state_path, run_label=str(run_dir)))


def run_import(
    config: ImportConfig, reporter: Reporter | None = None, *, handle_signals: bool = False
) -> RunReport:
    """Import ``config.sources``. Raises ConfigError (exit 2) before sending; otherwise returns
    a report whose ``exit_code`` follows the documented table."""
    mapping = load_mapping(config.mapping_path) if config.mapping_path else None
    options = read_options(config, mapping)
    sources: list[Source] = []
    pool: ConvertPool | None = None
    try:
        locations = expand(config.sources)
        check_shown_apart(location.name for location in locations)
        pool = _early_pool(config, map(_size, locations))
        for location in locations:
            sources.append(open_source(location, options))
        wire = _wire(config)
        converters = converters_for(sources, mapping, wire)
        specs = _specs(sources, mapping, wire)
        arguments = [redact_urls(name) for name in config.sources]  # before any expansion
        extra = {"kind": "run", "arguments": arguments}
        return _start(
            config, list(sources), converters, extra, reporter, handle_signals, specs, mapping, pool
        )
    finally:
        close_all(sources)
        if pool is not None:
            pool.close()


def _reopen(
    manifest: dict[str, Any],
    config: ImportConfig,
    mapping: CompiledMapping | None,
    source_urls: Sequence[str],
) -> tuple[list[RowSource], list[RowConverter], list[ConverterSpec] | None]:
    if manifest.get("kind") == "retry":
        source, converter = reopen_retry(manifest, mapping)
        return [source], [converter], None
    wire = _wire(config)
    sources, converters = reopen_files(manifest, config, mapping, source_urls, wire)
    return list(sources), converters, _specs(sources, mapping, wire)


def resume_import(
    run_dir: Path,
    *,
    api_key: str,
    rate_per_minute: int | None = None,
    concurrency: int | None = None,
    max_failed_ratio: float | None = None,
    workers: int | None = None,
    source_urls: Sequence[str] = (),
    reporter: Reporter | None = None,
    handle_signals: bool = False,
) -> RunReport:
    """Continue an interrupted or aborted run: send every record without a final outcome.

    ``source_urls``: the run's source URLs that held credentials (run.json keeps them without),
    given again; each must show as the one recorded, and its object be unchanged."""
    manifest = read_manifest(run_dir)
    config = config_from(
        manifest,
        api_key,
        run_dir,
        rate_per_minute=rate_per_minute,
        concurrency=concurrency,
        max_failed_ratio=max_failed_ratio,
        workers=workers,
    )
    mapping = check_mapping(config, manifest)
    named = _operation_sources(config, mapping, operation_sources(manifest))
    pool = None
    if manifest.get("kind") != "retry":  # a retry's source converts here
        pool = _early_pool(config, (s.get("size") for s in manifest.get("sources", [])))
    sources: list[RowSource] = []
    try:
        sources, converters, specs = _reopen(manifest, config, mapping, source_urls)
        with contextlib.ExitStack() as stack:
            state = _open_state(config, run_dir, stack)
            journal = stack.enter_context(Journal.reopen(run_dir))
            outcomes = read_outcomes(run_dir)  # under the lock: nobody else is appending
            earlier = manifest.get("elapsed_s", 0.0)
            attempt = Attempt(
                config,
                sources,
                converters,
                outcomes,
                earlier,
                state=state,
                specs=specs,
                operation_sources=named,
                pool=pool,
            )
            return execute_attempt(attempt, journal, manifest, reporter, handle_signals)
    finally:
        close_all(sources)
        if pool is not None:
            pool.close()


def retry_import(
    parent: Path,
    *,
    api_key: str,
    mapping_path: Path | None = None,
    only: Sequence[str] = (),
    run_dir: Path | None = None,
    endpoint: str | None = None,
    command: Sequence[str] = (),
    reporter: Reporter | None = None,
    handle_signals: bool = False,
) -> RunReport:
    """Re-send the records of ``parent``'s failures.jsonl as a new run."""
    parent_manifest = read_manifest(parent)
    source = FailureSource(parent_failures(parent), only)
    config = config_from(
        parent_manifest | {"sources": [{"name": source.name}], "command": list(command)},
        api_key,
        run_dir or default_run_dir(),
        endpoint=endpoint,
        mapping_path=mapping_path,
        dry_run=False,
    )
    mapping = load_mapping(config.mapping_path) if config.mapping_path else None
    formats = {s["name"]: s.get("format") for s in parent_manifest.get("sources", [])}
    converter = RetryConverter(source, mapping, formats)
    extra = {
        "kind": "retry",
        "retry_of": {"run_dir": str(parent.resolve()), "only": list(only)},
        # Its rows keep the parent's source names: they name their operations as it did.
        "operation_sources": operation_sources(parent_manifest),
    }
    return _start(config, [source], [converter], extra, reporter, handle_signals, None, mapping)
