"""``s3://`` and ``gs://`` objects through obstore (the optional ``cloud`` extra).

obstore (Rust's object_store) was measured against fsspec/s3fs and boto3 streaming one gzip
object from moto's server: a quarter of s3fs's peak memory and the quickest first byte (the
note of issue 14). Credentials come from each provider's standard chain: for S3 the
environment, web identity, container and instance credentials, and the shared profile files
through boto3 when one exists and the environment has no key; for GCS the application default
credentials. S3-compatible stores are reached through ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` with path-style requests. No message here ever carries a credential or a
store's raw answer (which can echo the access key id).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from importer.config import is_loopback
from importer.errors import InputError
from importer.read.locations import Location, display_name, listing_prefix
from importer.read.remote import CHUNK_BYTES, Changed, Dropped

EXTRA_HINT = "pip install 'braze-importer[cloud]'"
AWS_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
AWS_KEYS_ALSO = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",)
# A GET streams at the importer's pace, for as long as the import takes: no overall timeout
# (obstore's default is 30 s), but a read that stalls for a minute is a drop (resumed).
STREAMING: Any = {"timeout": timedelta(hours=24), "read_timeout": timedelta(seconds=60)}
RETRY: Any = {
    "max_retries": 3,
    "backoff": {"init_backoff": timedelta(seconds=0.1), "max_backoff": timedelta(seconds=2)},
}


def _obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise InputError(f"s3:// and gs:// sources need the cloud extra: {EXTRA_HINT}") from None
    return obstore


class CloudBackend:
    """One store per bucket, kept for the process (a listing, heads and reads share it)."""

    _shared: CloudBackend | None = None

    def __init__(self) -> None:
        self._stores: dict[str, Any] = {}

    @classmethod
    def shared(cls) -> CloudBackend:
        if cls._shared is None:
            _obstore()  # fail first, with the hint
            cls._shared = cls()
        return cls._shared

    def listing(self, url: str) -> tuple[str, Iterator[Location]]:
        bucket_url, key = _split(url)
        base = bucket_url + "/"
        return base, self._listed(url, base, listing_prefix(key))

    def _listed(self, url: str, base: str, prefix: str) -> Iterator[Location]:
        obstore = _obstore()
        try:
            for batch in obstore.list(self._store(url), prefix=prefix or None, chunk_size=1000):
                for meta in batch:
                    yield Location(base + meta["path"], meta["size"], _version(meta))
        except (obstore.exceptions.BaseError, OSError) as exc:  # NotFound is a FileNotFoundError
            raise InputError(f"cannot list {display_name(url)}: {_reason(exc)}") from None

    def head(self, url: str) -> Location:
        obstore = _obstore()
        _, key = _split(url)
        try:
            meta = obstore.head(self._store(url), key)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise InputError(f"cannot read {display_name(url)}: {_reason(exc)}") from None
        return Location(url, meta["size"], _version(meta))

    def chunks(self, location: Location, offset: int) -> Iterator[bytes]:
        obstore = _obstore()
        _, key = _split(location.name)
        options: dict[str, Any] = {"range": {"offset": offset}} if offset else {}
        etag = (location.version or "").removeprefix("etag:")
        if location.version and location.version.startswith("etag:"):
            options["if_match"] = etag
        try:
            result = obstore.get(self._store(location.name), key, options=options)
            if _version(result.meta) != location.version:
                raise Changed(f"its version is now {_version(result.meta)}")
            for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                yield bytes(chunk)
        except obstore.exceptions.PreconditionError:
            raise Changed("it was replaced") from None
        except (FileNotFoundError, obstore.exceptions.PermissionDeniedError) as exc:
            raise Changed(_reason(exc)) from None
        except Exception as exc:  # obstore raises its own errors and OSError for the body
            if isinstance(exc, Changed):
                raise
            raise Dropped(_reason(exc)) from None

    def _store(self, url: str) -> Any:
        bucket_url, _ = _split(url)
        if bucket_url not in self._stores:
            self._stores[bucket_url] = _make_store(bucket_url)
        return self._stores[bucket_url]


def _split(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``s3://bucket``, ``a/b``)."""
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(f"{display_name(url)}: no bucket named")
    if "@" in bucket:  # no bucket name holds one: s3://KEY:SECRET@bucket
        raise InputError(
            f"{display_name(url)}: credentials do not go in an {scheme}:// URL; they come from "
            "the environment, profile files or the instance's identity"
        )
    return f"{scheme.lower()}://{bucket}", key


def _make_store(bucket_url: str) -> Any:
    from obstore.store import GCSStore, S3Store

    scheme, bucket = bucket_url.split("://", 1)
    if scheme == "gs":
        return GCSStore(bucket, client_options=STREAMING, retry_config=RETRY)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config: Any = {}
    client: Any = dict(STREAMING)
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise InputError(
                f"refusing plain http to {parts.hostname}: rows would travel in clear; use "
                "https in AWS_ENDPOINT_URL_S3 (http is allowed for loopback only)"
            )
        client["allow_http"] = parts.scheme == "http"
        config |= {"endpoint": endpoint, "virtual_hosted_style_request": False}
    if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        config["region"] = "us-east-1"
    elif os.environ.get("AWS_DEFAULT_REGION") and not os.environ.get("AWS_REGION"):
        config["region"] = os.environ["AWS_DEFAULT_REGION"]
    provider = _profile_credentials()
    return S3Store(
        bucket,
        config=config,
        client_options=client,
        retry_config=RETRY,
        credential_provider=provider,
    )


def _profile_credentials() -> Any:
    """botocore's chain when credentials can only come from the shared profile files."""
    if any(os.environ.get(k) for k in (*AWS_KEYS, *AWS_KEYS_ALSO)):
        return None
    files = [
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
    ]
    if not any(Path(f).expanduser().is_file() for f in files):
        return None  # instance or workload identity: obstore's own chain finds it
    try:
        import boto3  # type: ignore[import-untyped]
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise InputError(
            f"AWS profile files need boto3, part of the cloud extra: {EXTRA_HINT}"
        ) from None
    try:
        return Boto3CredentialProvider(boto3.Session())
    except Exception as exc:
        raise InputError(f"cannot use the AWS profile: {type(exc).__name__}") from None


def _version(meta: Any) -> str | None:
    if meta.get("version"):
        return f"version:{meta['version']}"
    if meta.get("e_tag"):
        return f"etag:{meta['e_tag']}"
    return None


def _reason(exc: BaseException) -> str:
    """What went wrong, in words of our own: a store's answer can echo the access key id."""
    text = str(exc)
    name = type(exc).__name__
    status = re.search(r"status code: (\d{3})", text)
    if "NoSuchBucket" in text:
        return "the bucket does not exist"
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text:
        return "not found"
    if name in ("PermissionDeniedError", "UnauthenticatedError") or "AccessDenied" in text:
        return "access denied: check the credentials (environment, profile or instance role)"
    if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
        return "the credentials were refused: check the access key and its secret"
    if status:
        return f"the store answered HTTP {status.group(1)}"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "the connection timed out"
    if "connect" in text.lower():
        return "could not connect to the store"
    return f"the store failed ({name})"
