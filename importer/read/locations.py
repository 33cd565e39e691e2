"""``Location``: one object a run reads (a path, ``-`` or a URL) with what its listing said of
it (size, version) — what ``run.json`` records and a resume checks; and the name rules: known
extensions, wildcards, globs on object keys."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

KNOWN_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
REMOTE_SCHEMES = ("s3://", "gs://", "https://", "http://")
WILDCARDS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Location:
    """One object to read: a path, ``-`` or a URL, with what its listing said of it."""

    name: str
    size: int | None = None
    # A remote object's version identity: "etag:...", "generation:...", "last-modified:...".
    version: str | None = None

    @property
    def remote(self) -> bool:
        return is_remote(self.name)


def is_remote(name: str) -> bool:
    return name.lower().startswith(REMOTE_SCHEMES)


def has_known_suffix(name: str) -> bool:
    base = name[:-3] if name.lower().endswith(".gz") else name
    return base.lower().endswith(KNOWN_SUFFIXES)


def has_wildcard(text: str) -> bool:
    return not WILDCARDS.isdisjoint(text)


def listing_prefix(pattern: str) -> str:
    """The literal folders in front of the first wildcard: where a store's listing starts."""
    literal: list[str] = []
    for part in pattern.split("/")[:-1]:
        if has_wildcard(part):
            break
        literal.append(part)
    return "/".join(literal)


def key_matches(key: str, pattern: str) -> bool:
    """A glob on an object key, folder by folder: ``*`` never crosses a ``/`` (as in a shell)."""
    parts, wanted = key.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True)
    )


def matching(pattern: str, listed: Iterator[Location], base: str) -> list[Location]:
    """The listed objects (named ``base`` + key) whose key matches ``pattern``, sorted by name.

    A pattern ending in ``/`` names a folder: its objects with a known extension."""
    if pattern.endswith("/") or pattern == "":
        pattern += "*"
        keep = [x for x in listed if has_known_suffix(x.name)]
    else:
        keep = list(listed)
    found = [x for x in keep if key_matches(x.name[len(base) :], pattern)]
    return sorted(found, key=lambda x: x.name)
