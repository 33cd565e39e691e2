"""One POST /users/track, and the one table that says what Braze's answer means.

This is the seam where aiohttp's and asyncio's exceptions become ours
(``translate_transport_errors``) and where the API key is scrubbed from every body we keep.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from importer.config import VERSION
from importer.errors import AbortError, RateLimited, TransientError, Unreachable
from importer.send.rate_control import EPOCH_THRESHOLD

REDACTED = "[REDACTED]"


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced: for errors and tracebacks, where a key can appear."""
    return text.replace(secret, REDACTED) if secret else text


USER_AGENT = f"braze-importer/{VERSION}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as received; ``body`` already has the API key scrubbed out."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    latency_s: float


@dataclass(frozen=True, slots=True)
class RefusedObject:
    """One entry of Braze's ``errors[]``: which object of which array, and why."""

    array: str
    index: int
    type: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """2xx: delivered, except the objects named in ``errors``."""

    errors: tuple[RefusedObject, ...]


@dataclass(frozen=True, slots=True)
class TooLarge:
    """413 or 400 "Max Input Length Exceeded": split the batch and send the halves."""

    message: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Any other 400: Braze processed nothing of this request."""

    message: str
    errors: tuple[RefusedObject, ...]


Verdict = Accepted | TooLarge | Refused


def _message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return body[:200].decode("utf-8", "replace").strip()


def _object_errors(body: bytes) -> tuple[RefusedObject, ...]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    entries = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return ()
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        array, index = entry.get("input_array"), entry.get("index")
        if isinstance(array, str) and isinstance(index, int):
            found.append(RefusedObject(array, index, str(entry.get("type", "refused"))))
    return tuple(found)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait: Retry-After first, else the window reset."""
    for name in ("x-ratelimit-retry-after", "retry-after"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset is None:
        return None
    try:
        number = float(reset)
    except ValueError:
        return None
    return max(0.0, number - now) if number > EPOCH_THRESHOLD else max(0.0, number)


def classify(answer: Answer, *, default_wait_s: float = 1.0) -> Verdict:
    """The status table. Returns what to do with the batch; raises for retry or abort."""
    status = answer.status
    if 200 <= status < 300:
        return Accepted(_object_errors(answer.body))
    message = _message(answer.body)
    if status == 429:
        wait = rate_limit_wait(answer.headers, time.time())
        raise RateLimited(f"429 {message}", wait_s=default_wait_s if wait is None else wait)
    if status >= 500 or status == 408:
        raise TransientError(f"HTTP {status} {message}".strip())
    if status == 413 or (status == 400 and "max input length" in message.lower()):
        return TooLarge(f"HTTP {status} {message}")
    if status == 400:
        return Refused(message, _object_errors(answer.body))
    if status in (401, 403):
        raise AbortError(f"Braze refused the API key (HTTP {status}: {message})")
    raise AbortError(f"unexpected HTTP {status} from Braze: {message}")


@contextmanager
def translate_transport_errors() -> Iterator[None]:
    """aiohttp and asyncio errors -> TransientError.

    Only a failure to connect is certain to have sent nothing; after a connection exists the
    body may have reached Braze, so a timeout or a dropped connection is ambiguous.
    """
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        # Permanent: retrying cannot make an untrusted certificate trusted.
        raise AbortError(
            f"TLS certificate of {exc.host} is not trusted: {exc.certificate_error}"
        ) from None
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise Unreachable(f"cannot connect: {exc}") from None
    except TimeoutError:
        raise TransientError("no answer before the timeout", ambiguous=True) from None
    except aiohttp.ClientError as exc:
        reason = str(exc) or type(exc).__name__
        raise TransientError(f"connection lost: {reason}", ambiguous=True) from None


class BrazeClient:
    """Sends bodies to ``{endpoint}{path}`` (``/users/track`` unless told) over one pooled
    session."""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        concurrency: int,
        timeout_s: float,
        path: str = "/users/track",
    ) -> None:
        self._url = URL(f"{endpoint}{path}")  # parsed once, not per request
        self._key = api_key.encode()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BrazeClient:
        connector = aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300)
        # Headers set once on the session: aiohttp would rebuild a header dict per request.
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            raise_for_status=False,
            headers=self._headers,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def scrub(self, body: bytes) -> bytes:
        return body.replace(self._key, REDACTED.encode()) if self._key else body

    async def post(self, body: bytes) -> Answer:
        assert self._session is not None, "use BrazeClient as an async context manager"
        started = time.perf_counter()
        with translate_transport_errors():
            async with self._session.post(self._url, data=body) as resp:
                payload = await resp.read()
                return Answer(
                    status=resp.status,
                    headers=resp.headers,
                    body=self.scrub(payload),
                    latency_s=time.perf_counter() - started,
                )
