"""``run.json``: what a run records of itself, and the checks a resume makes against it.

The manifest holds what a resume needs to redo the same run: the settings (never the API key),
each source with its size and fingerprint, and the mapping's digest. A resume refuses a source
or a mapping that changed since (exit 2): it cannot know which of their rows were sent.

A source URL is recorded as ``display_name`` shows it, never with its credentials (userinfo, a
presigned query's values): such an entry is marked ``url_redacted``, and a resume needs the URL
again (``given_urls``), accepted when it shows as the recorded one, matches the entry's
``url_verifier`` (``importer.rundir.verifier``) and the object is unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from importer.config import DEFAULT_CONCURRENCY, ImportConfig, ReadOptions, RetryPolicy
from importer.errors import ConfigError
from importer.mapping import CompiledMapping, load_mapping
from importer.models import RowSource
from importer.read import Location, describe, display_name, fingerprint
from importer.rundir.verifier import matches, url_verifier


def mapping_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read mapping {path}: {exc.strerror}") from None


def settings_of(config: ImportConfig) -> dict[str, Any]:
    return {
        "endpoint": config.endpoint,
        "mapping": str(config.mapping_path.resolve()) if config.mapping_path else None,
        "mapping_digest": mapping_digest(config.mapping_path),
        "read": {
            "format": config.read.format,
            "encoding": config.read.encoding,
            "delimiter": config.read.delimiter,
            "max_cell_bytes": config.read.max_cell_bytes,
        },
        "rate_per_minute": config.rate_per_minute,
        "concurrency": config.concurrency,
        "batch_mode": config.batch_mode,
        "dry_run": config.dry_run,
        "on_ambiguous": config.retry.on_ambiguous,
        "state": str(config.state_path.resolve()) if config.state_path else None,
        "max_failed_ratio": config.max_failed_ratio,
    }


def source_entry(source: RowSource) -> dict[str, Any]:
    location: Location | None = getattr(source, "location", None)
    if location is not None and location.remote:
        entry = {
            "name": source.name,
            "url": location.display,  # never its credentials: resume asks for them again
            "format": getattr(source, "format", None),
            "size": location.size,
            "fingerprint": location.version,  # ETag, generation or Last-Modified
        }
        if location.display == location.name:
            return entry
        # No credential in run.json: a salted slow hash tells its URL given again (verifier.py).
        return entry | {"url_redacted": True, "url_verifier": url_verifier(location.name)}
    path = getattr(source, "path", None) or source.name
    absolute = None if source.name == "-" else str(Path(path).resolve())
    return {
        "name": source.name,
        "path": absolute,
        "format": getattr(source, "format", None),
        "size": source.size,
        "fingerprint": fingerprint(absolute) if absolute else None,
    }


def operation_sources(manifest: dict[str, Any]) -> dict[str, str | None]:
    """Each source's name -> the fingerprint the run recorded for it (a bucket object's version;
    None: stdin, or an object without one): how ``--state`` names the operations of rows without
    an ``[operations] key`` (importer.state.digest). A retry run records its parent's under
    ``operation_sources``, as its rows keep their parent's source names, so a retry of a retry
    still names a row by the file it came from, wherever that file is now."""
    recorded = manifest.get("operation_sources")
    if isinstance(recorded, dict):
        return dict(recorded)
    return {entry["name"]: entry.get("fingerprint") for entry in manifest.get("sources", [])}


def config_from(
    manifest: dict[str, Any], api_key: str, run_dir: Path, **overrides: Any
) -> ImportConfig:
    settings = manifest["settings"]
    mapping = settings.get("mapping")
    config = ImportConfig(
        sources=tuple(s["name"] for s in manifest.get("sources", [])),
        endpoint=settings["endpoint"],
        api_key=api_key,
        mapping_path=Path(mapping) if mapping else None,
        read=ReadOptions(**settings.get("read", {})),
        run_dir=run_dir,
        rate_per_minute=settings.get("rate_per_minute", 50_000),
        concurrency=settings.get("concurrency", DEFAULT_CONCURRENCY),
        batch_mode=settings.get("batch_mode", "combined"),
        dry_run=bool(settings.get("dry_run")),
        retry=RetryPolicy(on_ambiguous=settings.get("on_ambiguous", "retry")),
        command=tuple(manifest.get("command", ())),
        state_path=Path(settings["state"]) if settings.get("state") else None,
        max_failed_ratio=settings.get("max_failed_ratio"),
    )
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def given_urls(manifest: dict[str, Any], urls: Sequence[str]) -> dict[str, str]:
    """The source URLs given again (``--source``), by the name run.json records for them; each
    must show (``display_name``) as one of the run's and, when run.json holds its verifier
    (not before this check existed), be the URL the run read, or it presigned again."""
    entries = {s["url"]: s for s in manifest.get("sources", []) if s.get("url")}
    given: dict[str, str] = {}
    for url in urls:
        shown = display_name(url)
        if shown not in entries:
            known = ", ".join(entries) or "none"
            raise ConfigError(
                f"--source {shown} is not a source of this run (its URLs, as run.json records "
                f"them: {known})"
            )
        verifier = entries[shown].get("url_verifier")
        if verifier is not None and not matches(url, verifier):
            raise ConfigError(
                f"--source {shown} is not a source of this run: it shows as one, but another "
                "query value, path or password makes it another URL than the one the run read"
            )
        given[shown] = url
    return given


def unchanged_source(entry: dict[str, Any], given: Mapping[str, str] | None = None) -> Location:
    """Where the source is (a local path or a URL), after checking it is the object the run
    started with. ``given``: URLs given again, by their recorded name (``given_urls``)."""
    name, path = entry.get("name"), entry.get("path")
    if entry.get("url"):
        return _unchanged_remote(entry, (given or {}).get(entry["url"]))
    if not path:
        raise ConfigError(f"source {name!r} was read from stdin and cannot be resumed")
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ConfigError(f"source {name} ({path}) is gone: {exc.strerror}") from None
    if size != entry.get("size") or fingerprint(path) != entry.get("fingerprint"):
        raise ConfigError(
            f"source {name} changed since the run started (size {entry.get('size')} -> {size} "
            "or different content); resume refuses to guess which rows were sent"
        )
    return Location(path, size)


def _unchanged_remote(entry: dict[str, Any], given: str | None) -> Location:
    if given is None and entry.get("url_redacted"):
        raise ConfigError(
            f"source {entry['url']} was read through a URL holding credentials, which run.json "
            "does not keep: give it again with --source URL"
        )
    try:
        now = describe(given or entry["url"])
    except ConfigError as exc:
        raise ConfigError(f"source {entry['name']} cannot be checked: {exc}") from None
    if now.size != entry.get("size") or now.version != entry.get("fingerprint"):
        raise ConfigError(
            f"source {entry['name']} changed since the run started (size {entry.get('size')} -> "
            f"{now.size}, {entry.get('fingerprint')} -> {now.version}); resume refuses to guess "
            "which rows were sent"
        )
    return now


def check_mapping(config: ImportConfig, manifest: dict[str, Any]) -> CompiledMapping | None:
    if config.mapping_path is None:
        return None
    if mapping_digest(config.mapping_path) != manifest["settings"].get("mapping_digest"):
        raise ConfigError(
            f"mapping {config.mapping_path} changed since the run started; resume it with the "
            "mapping it started with, or use `braze-import retry --mapping` for corrected rows"
        )
    return load_mapping(config.mapping_path)
