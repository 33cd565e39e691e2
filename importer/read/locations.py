"""``Location``: one object a run reads (a path, ``-`` or a URL) with what its listing said of
it (size, version) — what ``run.json`` records and a resume checks; the name rules: known
extensions, wildcards, globs on object keys; and a URL's display name, without the credentials
it may carry (``display_name``)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from importer.errors import ConfigError

KNOWN_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
REMOTE_SCHEMES = ("s3://", "gs://", "https://", "http://")
WILDCARDS = frozenset("*?[")
HIDDEN = "***"
# scheme://authority, then the rest (path, ?query, #fragment).
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.S)
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:@\[\]]*)(:[0-9]*)?")
_AUTHORITY_END = re.compile(r"[/?#]")
_URL_IN_ARG = re.compile(r"(?i)(?:https?|s3|gs)://\S*")
# Shorter parts are not scrubbed from messages (X-Amz-Expires=3600, a user "u"): that would hide
# words, not credentials. Names shown are hidden in full by display_name whatever their length.
MIN_SECRET_LENGTH = 8


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

    @property
    def display(self) -> str:
        """The name as it may be shown, logged and stored (see ``display_name``)."""
        return display_name(self.name)

    def __repr__(self) -> str:  # never the credentials, even in a traceback or a debugger
        return f"Location({self.display!r}, size={self.size!r}, version={self.version!r})"


def is_remote(name: str) -> bool:
    return name.lower().startswith(REMOTE_SCHEMES)


def display_name(name: str) -> str:
    """A source name as it may be shown, logged and written to the run directory.

    A URL's userinfo becomes ``***`` (``https://***@host/...``); for http(s), every query value
    and the fragment become ``***`` too, the parameter names kept
    (``?X-Amz-Signature=***&X-Amz-Credential=***``): presigned URLs and SAS tokens carry their
    secret there. A bucket key may hold ``?`` and ``#``, so s3:// and gs:// keep theirs (they
    carry no credentials: those come from the provider's chain). Paths are left as they are."""
    parts = url_parts(name)
    if parts is None:
        return name
    scheme, authority, rest = parts
    if "@" in authority:
        authority = HIDDEN + "@" + authority.rpartition("@")[2]
    if scheme.lower() in ("http", "https"):
        rest = _hide_query(rest)
    return f"{scheme}://{authority}{rest}"


def url_parts(name: str) -> tuple[str, str, str] | None:
    """A URL's scheme, authority (``[userinfo@]host[:port]``) and the rest; None: not a URL.

    A password holding a ``/``, ``?`` or ``#`` not percent-encoded ends the authority there by
    the RFC (urllib reads ``user:pa`` as host and port), which would show the rest of it. So
    when the authority so cut is no host[:port] and an ``@`` follows, the authority runs on to
    the last ``@`` before the next ``/?#``: the userinfo a person meant."""
    parts = _URL.fullmatch(name) if is_remote(name) else None
    if parts is None:
        return None
    scheme, authority, rest = parts["scheme"], parts["authority"], parts["rest"]
    at = rest.find("@")
    if at < 0 or "@" in authority or _HOST_PORT.fullmatch(authority):
        return scheme, authority, rest
    found = _AUTHORITY_END.search(rest, at)
    cut = found.start() if found else len(rest)
    return scheme, authority + rest[:cut], rest[cut:]


def check_shown_apart(names: Iterable[str]) -> None:
    """Refuse (ConfigError) two different sources that ``display_name`` shows alike.

    Results, failures, verify and ``--state``'s operation names key rows by the name shown, so
    ``/dl?file=jan.csv&key=K`` and ``/dl?file=feb.csv&key=K`` (both ``?file=***&key=***``) would
    be mixed up. Showing some query values instead would need a list of the harmless ones, and
    a parameter missing from a deny-list of credentials would leak: such sources go in separate
    runs instead."""
    seen: dict[str, str] = {}
    for name in names:
        shown = display_name(name)
        if seen.setdefault(shown, name) != name:
            raise ConfigError(
                f"{shown} names two sources once their credentials are hidden (run.json, "
                "results and --state would mix their rows up): import them in separate runs"
            )


def _hide_query(rest: str) -> str:
    before, hash_, fragment = rest.partition("#")
    path, question, query = before.partition("?")
    params = [_hide_value(p) for p in query.split("&")] if query else []
    shown = path + question + "&".join(params)
    return shown + (hash_ + HIDDEN if fragment else hash_)


def _hide_value(param: str) -> str:
    key, equals, value = param.partition("=")
    if not equals:
        return HIDDEN if key else key  # a bare token (?abc123) is all value
    return f"{key}={HIDDEN if value else ''}"


def url_secrets(name: str) -> list[str]:
    """The parts of a URL that ``display_name`` hides, as they may appear in a message (raw and
    percent-decoded): scrubbed from every error line as a last defence."""
    parts = url_parts(name)
    if parts is None or name == display_name(name):
        return []
    scheme, authority, rest = parts
    userinfo = authority.rpartition("@")[0]
    before, _, fragment = rest.partition("#")
    query = before.partition("?")[2]
    if scheme.lower() not in ("http", "https"):
        query = fragment = ""  # a key's own ? and # (display_name keeps them)
    whole = [userinfo, query, fragment]
    pieces = [userinfo.partition(":")[2], *(p.partition("=")[2] for p in query.split("&"))]
    found = {s for s in (*whole, *pieces) if len(s) >= MIN_SECRET_LENGTH}
    found |= {unquote(s) for s in found}
    return sorted(found, key=len, reverse=True)  # the longest first: no secret half-replaced


def redact_urls(arg: str) -> str:
    """Every URL in a command-line argument (``--source=URL`` too) as ``display_name`` shows it."""
    return _URL_IN_ARG.sub(lambda found: display_name(found.group()), arg)


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
