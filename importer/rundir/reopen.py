"""Reading a run's sources again, as the run read them: for ``resume`` and ``verify``.

Every source must be the file or object the run started with, and the mapping the one it used
(exit 2 otherwise, importer.rundir.manifest); the read options are the run's, the mapping's
``[input]`` under the flags; each source gets the converter the run gave it. A URL that held
credentials is not in run.json: the caller gives it again (``urls``, from ``--source``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from importer.config import ImportConfig, ReadOptions
from importer.convert import Converter
from importer.errors import ImporterError
from importer.mapping import CompiledMapping, default_mapping
from importer.models import RowConverter, RowSource
from importer.read import Source, open_source, open_stream
from importer.rundir.failures import FailureSource, RetryConverter
from importer.rundir.manifest import given_urls, unchanged_source
from importer.rundir.outcomes import read_manifest


def read_options(config: ImportConfig, mapping: CompiledMapping | None) -> ReadOptions:
    if mapping is None:
        return config.read
    given = mapping.input
    from_mapping = ReadOptions(
        format=given.format,
        encoding=given.encoding,
        delimiter=given.delimiter,
        max_cell_bytes=given.max_cell_bytes,
    )
    return config.read.merged_over(from_mapping)


def converters_for(
    sources: Sequence[Source], mapping: CompiledMapping | None, wire: bool = False
) -> list[RowConverter]:
    """``wire``: the converters make a row's objects as JSON only (``Converter.to_wire``)."""
    converters: list[RowConverter] = []
    for source in sources:
        if mapping is None:
            converters.append(Converter(default_mapping(source.header, source.name), wire=wire))
            continue
        if source.header is not None:
            mapping.check_header(source.header, source.name)
        converters.append(Converter(mapping, wire=wire))
    return converters


def close_all(sources: Sequence[RowSource]) -> None:
    for source in sources:
        with contextlib.suppress(OSError):
            source.close()


def reopen_retry(
    manifest: dict[str, Any], mapping: CompiledMapping | None
) -> tuple[FailureSource, RetryConverter]:
    """A retry run's source (its parent's failures.jsonl) and converter."""
    entry = manifest["sources"][0]
    parent = manifest["retry_of"]
    source = FailureSource(Path(unchanged_source(entry).name), parent.get("only", ()))
    parent_manifest = read_manifest(Path(parent["run_dir"]))
    formats = {s["name"]: s.get("format") for s in parent_manifest.get("sources", [])}
    return source, RetryConverter(source, mapping, formats)


def reopen_files(
    manifest: dict[str, Any],
    config: ImportConfig,
    mapping: CompiledMapping | None,
    urls: Sequence[str] = (),
    wire: bool = False,
) -> tuple[list[Source], list[RowConverter]]:
    """A run's files, each checked unchanged, opened as the run opened them; ``urls``: source
    URLs given again with their credentials; ``wire``: as for ``converters_for``."""
    options = read_options(config, mapping)
    given = given_urls(manifest, urls)
    sources: list[Source] = []
    try:
        for entry in manifest.get("sources", []):
            location = unchanged_source(entry, given)  # a local path, or a URL with its version
            if location.remote:  # named as the run named it (run.json of an older version too)
                sources.append(open_source(location, options, shown_as=entry["name"]))
                continue
            stream = open(location.name, "rb")  # noqa: SIM115 - the Source owns and closes it
            sources.append(
                open_stream(entry["name"], stream, options, size=entry["size"], owns_stream=True)
            )
        return sources, converters_for(sources, mapping, wire)
    except ImporterError:
        close_all(sources)
        raise
