"""From SOURCE arguments to the objects a run reads, and to their streams.

``expand`` turns the arguments into ``Location``s, in order: a directory gives its files with a
known extension, a glob (local, or in a bucket through the store's listing) its matches, each
sorted by name. ``describe`` asks a remote object's size and version now (a resume compares
them with run.json); ``open_remote`` streams one, resuming after drops. A glob matching
nothing, a missing object or an unreachable bucket is an InputError (exit 2) naming it, before
anything is sent.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from importer.errors import InputError
from importer.read.locations import (
    KNOWN_SUFFIXES,
    Location,
    display_name,
    has_known_suffix,
    has_wildcard,
    is_remote,
    matching,
)
from importer.read.remote import Backend, ResumingStream


def expand(names: Sequence[str]) -> list[Location]:
    """Every SOURCE argument expanded, in the order given (see the module docstring)."""
    locations: list[Location] = []
    for name in names:
        locations.extend(_expand_one(name))
    return locations


def _expand_one(name: str) -> list[Location]:
    if name == "-":
        return [Location(name)]
    if is_remote(name):
        found = list_remote(name)
    elif os.path.isdir(name):
        found = _directory(name)
        if not found:
            raise InputError(f"directory {name} holds no file to read ({_suffixes()})")
        return found
    elif has_wildcard(name) and not os.path.exists(name):
        found = [Location(path) for path in sorted(glob.glob(name)) if os.path.isfile(path)]
    else:
        return [Location(name)]
    if not found:
        raise InputError(f"{display_name(name)} matches nothing")
    return found


def _directory(path: str) -> list[Location]:
    with os.scandir(path) as entries:
        names = sorted(e.name for e in entries if e.is_file() and has_known_suffix(e.name))
    return [Location(os.path.join(path, n)) for n in names]


def _suffixes() -> str:
    return ", ".join(f"{s}[.gz]" for s in KNOWN_SUFFIXES)


def backend_for(url: str) -> Backend:
    if url.lower().startswith(("s3://", "gs://")):
        from importer.read.cloud import CloudBackend

        return CloudBackend.shared()
    from importer.read.web import WebBackend

    return WebBackend()


def list_remote(name: str) -> list[Location]:
    """A URL as the objects it names: itself, or a glob's or folder's matches."""
    backend = backend_for(name)
    key = _key_of(name)
    folder = not key or key.endswith("/")  # s3://bucket/ and s3://bucket/night/
    if name.lower().startswith(("s3://", "gs://")) and (folder or has_wildcard(key)):
        base, listed = backend.listing(name)
        return matching(key, listed, base)
    return [backend.head(name)]


def describe(name: str) -> Location:
    """The object as it is now (size, version): what a resume compares with run.json."""
    return backend_for(name).head(name)


def _key_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[1] if "/" in rest else ""


def open_remote(location: Location) -> ResumingStream:
    if location.size is None or location.version is None:
        location = describe(location.name)
    return ResumingStream(location, backend_for(location.name))
