"""``https://`` sources through the standard library (no extra needed).

A GET, redirects followed (never to plain http off loopback), trusted CAs from the system or
``SSL_CERT_FILE``. The object's version is its ETag, else its Last-Modified date (with its size,
recorded beside it). A resumed read asks for ``Range: bytes=N-`` and checks that the answer is
that range of the same version.

A URL may carry credentials: ``https://user:password@host/...`` is sent as HTTP Basic
authentication (to that origin only, redirects included), and a presigned query string is sent
as it is. No message names more of the URL than ``display_name`` shows.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from http.client import HTTPMessage
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from importer.config import is_loopback
from importer.errors import InputError
from importer.read.locations import HIDDEN, Location, display_name, url_parts, url_secrets
from importer.read.remote import CHUNK_BYTES, Changed, Dropped

TIMEOUT_S = 60.0
USER_AGENT = "braze-importer"


def check_url(url: str) -> None:
    """Refuse (InputError) what must not be asked for, a source's URL or a redirect's: another
    scheme than https (urllib would follow a redirect to ftp://), plain http off loopback, a
    malformed URL, a password that urllib would take for a port."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("https", "http"):  # the scheme alone: such a URL is not display_name's
        raise InputError(f"refusing a redirect to {scheme or '(no scheme)'}://...: https only")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        raise InputError(f"{display_name(url)} is not a valid URL") from None
    meant = url_parts(url)
    if meant is not None and meant[1] != parts.netloc:  # urllib would ask host "user", port "pa"
        raise InputError(
            f"{display_name(url)}: its user name or password holds a '/', '?' or '#': "
            "percent-encode them (%2F, %3F, %23)"
        )
    if not parts.hostname:
        raise InputError(f"{display_name(url)}: no host named")
    if scheme == "http" and not is_loopback(parts.hostname):
        raise InputError(
            f"refusing plain http to {parts.hostname}: rows would travel in clear; use https "
            "(http is allowed for loopback only)"
        )


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> Any:
        check_url(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)  # never to another host
        return new


_opener = urllib.request.build_opener(_SafeRedirects)


class WebBackend:
    def listing(self, url: str) -> tuple[str, Iterator[Location]]:
        raise InputError(
            f"{display_name(url)}: an https:// source cannot be listed; name each file"
        )

    def head(self, url: str) -> Location:
        check_url(url)
        try:
            with self._open(url, method="HEAD") as answer:
                return _location(url, answer.headers)
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):  # HEAD not allowed: ask for the first byte instead
                raise InputError(f"cannot read {display_name(url)}: {_status(exc.code)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise InputError(f"cannot read {display_name(url)}: {_failure(exc, url)}") from None
        return self._head_by_get(url)

    def _head_by_get(self, url: str) -> Location:
        try:
            with self._open(url, headers={"Range": "bytes=0-0"}) as answer:
                size = answer.headers.get("Content-Range", "").rpartition("/")[2]
                location = _location(url, answer.headers)
                return Location(url, int(size) if size.isdigit() else None, location.version)
        except urllib.error.HTTPError as exc:
            raise InputError(f"cannot read {display_name(url)}: {_status(exc.code)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise InputError(f"cannot read {display_name(url)}: {_failure(exc, url)}") from None

    def chunks(self, location: Location, offset: int) -> Iterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self._open(location.name, headers=headers) as answer:
                _check_same(location, answer, offset)
                while chunk := answer.read1(CHUNK_BYTES):
                    yield chunk
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410, 412, 416):
                raise Changed(_status(exc.code)) from None
            raise Dropped(_status(exc.code)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise Dropped(_failure(exc, location.name)) from None

    def _open(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
        address, authorization = _without_userinfo(url)
        request = urllib.request.Request(
            address,
            method=method,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})},
        )
        if authorization:  # unredirected: the redirect handler decides who else gets it
            request.add_unredirected_header("Authorization", authorization)
        return _opener.open(request, timeout=TIMEOUT_S)


def _without_userinfo(url: str) -> tuple[str, str | None]:
    """The URL to ask for (urllib would take ``user:password@host`` for a host name) and the
    Basic authorization its userinfo stands for."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return url, None
    userinfo, _, host = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return url.replace(netloc, host, 1), f"Basic {token}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower()


def _location(url: str, headers: Message) -> Location:
    length = headers.get("Content-Length", "")
    size = int(length) if length.isdigit() else None
    return Location(url, size, _version(headers))


def _version(headers: Message) -> str | None:
    if headers.get("ETag"):
        return f"etag:{headers['ETag']}"
    if headers.get("Last-Modified"):
        return f"last-modified:{headers['Last-Modified']}"
    return None


def _check_same(location: Location, answer: Any, offset: int) -> None:
    version = _version(answer.headers)
    if location.version is not None and version != location.version:
        raise Changed(f"its version is now {version}")
    if offset:
        start = answer.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
        if answer.status != 206 or start != str(offset):
            raise Changed("the server does not resume from a byte offset (no Range support)")


def _status(code: int) -> str:
    words = {401: "access denied", 403: "access denied", 404: "not found", 410: "gone"}
    return f"HTTP {code}" + (f" ({words[code]})" if code in words else "")


def _failure(exc: BaseException, url: str) -> str:
    """What failed, without the URL's credentials (http.client's InvalidURL quotes the path and
    query it refused)."""
    reason = getattr(exc, "reason", None)
    text = f"{type(exc).__name__}: {reason or exc}"
    for secret in url_secrets(url):
        text = text.replace(secret, HIDDEN)
    return text
