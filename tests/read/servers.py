"""Real servers for the remote-source tests, over sockets on 127.0.0.1: moto's standalone S3
server (a subprocess), a TCP proxy that cuts a connection mid-answer, and an HTTPS server
with a test CA."""

from __future__ import annotations

import base64
import contextlib
import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEY = "sandbox-key"  # the sandbox's
MAPPING = """
[attributes]
points = { column = "points", type = "integer" }

[identity]
external_id = "id"
"""
ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


def run_args(tmp_path: Path, source: str, url: str, *extra: str) -> list[str]:
    """``braze-import run SOURCE`` with MAPPING into ``tmp_path/run``."""
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    args = [
        sys.executable,
        "-m",
        "importer",
        "run",
        source,
        "--mapping",
        str(tmp_path / "map.toml"),
    ]
    return [*args, "--endpoint", url, "--run-dir", str(tmp_path / "run"), "--quiet", *extra]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _until_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # the server is still starting
    raise RuntimeError("moto server did not start")


@dataclass
class Moto:
    url: str
    key_id: str
    secret: str

    def client(self, url: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=url or self.url,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def env(self, url: str | None = None) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": url or self.url,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": "us-east-1",
        }


@contextmanager
def moto_server() -> Iterator[Moto]:
    """moto with authentication on after the three IAM calls that make our user and its key:
    wrong credentials are refused as AWS would."""
    import boto3

    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "3", "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _until_listening(port, proc)
        url = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="importer")
        iam.put_user_policy(UserName="importer", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="importer")["AccessKey"]
        yield Moto(url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class CuttingProxy:
    """Forwards to ``upstream``; cuts the connection once an answer passes ``cut_after`` bytes,
    ``cuts`` times in all (then forwards faithfully). ``down_after_cut``: after a cut, every new
    connection is closed at once (the store went away)."""

    upstream: int
    cut_after: int
    cuts: int = 1
    down_after_cut: bool = False
    cut_done: int = 0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> CuttingProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down_after_cut and self.cut_done:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                sent += len(data)
                if answers and sent > self.cut_after and self._take_cut():
                    break
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cut_done >= self.cuts:
                return False
            self.cut_done += 1
            return True


@dataclass
class Served:
    """What the HTTPS server serves: path -> body, with redirects and cuts."""

    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    etags: bool = True
    by_query: bool = False  # files keyed by path and query (an API's /dl?file=...), not path
    dates: bool = True  # False: neither Last-Modified nor Content-Length (nothing to compare)
    cut_once_after: int | None = None  # cut the first full answer after this many body bytes
    ranges_asked: list[str] = field(default_factory=list)
    # A presigned or password-protected object: every request must carry these (403 if not).
    basic_auth: str | None = None  # "user:password"
    signature: str | None = None  # the X-Amz-Signature query value
    authorizations: list[str | None] = field(default_factory=list)  # the header, per request


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _refused(self) -> bool:
        served = self.served
        query = parse_qs(urlsplit(self.path).query)
        wanted = "Basic " + base64.b64encode((served.basic_auth or "").encode()).decode()
        return (served.basic_auth is not None and self.headers.get("Authorization") != wanted) or (
            served.signature is not None and query.get("X-Amz-Signature") != [served.signature]
        )

    def _answer(self, head: bool) -> None:
        served = self.served
        parts = urlsplit(self.path)
        path = f"{parts.path}?{parts.query}" if served.by_query else parts.path
        served.authorizations.append(self.headers.get("Authorization"))
        if self._refused():
            self.send_error(403)
            return
        if path in served.redirects:
            self.send_response(302)
            self.send_header("Location", served.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = served.files.get(path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not head:
            served.ranges_asked.append(wanted)
            start = int(wanted.removeprefix("bytes=").partition("-")[0])
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if served.etags:
            self.send_header("ETag", f'"{hash(body) & 0xFFFFFFFF:x}"')
        if served.dates:
            self.send_header("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT")
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if head:
            return
        cut = served.cut_once_after
        if cut is not None and not start and len(body) > cut:
            served.cut_once_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])


@contextmanager
def https_server(served: Served, ca_dir: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate from a test CA; yields its base URL
    and the CA's PEM file (for SSL_CERT_FILE)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = ca_dir / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file), append=ca_file.exists())  # a second server's CA too
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    handler = type("Handler", (_Handler,), {"served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca_file
    finally:
        server.shutdown()
        server.server_close()
