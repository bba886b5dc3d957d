"""REST connections against a real HTTP server in a thread of the test process (stdlib, real sockets, TLS too)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from splice.server.connections import KINDS, Connection
from splice.server.connections.rest import RestSpec
from splice.server.core.context import current_cid

SECRET = "s3cr3t-Xq9"


class Upstream(ThreadingHTTPServer):
    """Answers every request with what it saw (JSON) and records it; a few paths misbehave on purpose.

    ``/flaky/<key>`` answers 503 to its first two calls, then 200; ``HEAD /no-head`` answers 405;
    ``/status/<n>`` answers ``n``.
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def count(self, path: str) -> int:
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            return self._counts[path]

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [seen for seen in self.seen if seen["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body.decode()}
        self.server.seen.append(seen)
        status = 200
        if self.path.startswith("/flaky/") and self.server.count(self.path) <= 2:
            status = 503
        elif self.path == "/no-head" and self.command == "HEAD":
            status = 405
        elif self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        payload = json.dumps(seen).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer


def _serve(server: Upstream) -> Iterator[Upstream]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    yield from _serve(Upstream())


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (its own CA), and the key; PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "splice test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "upstream.pem", directory / "upstream.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Upstream, Path]]:
    cert_file, key_file = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    for server in _serve(Upstream(context)):
        yield server, cert_file


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Opener = Callable[..., Connection]


@pytest.fixture
async def open_rest() -> AsyncIterator[Opener]:
    """Opens connections the way a server does (through the kind registry) and closes them after the test."""
    opened: list[Connection] = []

    def make(address: str, secrets: dict[str, str] | None = None, **options: Any) -> Connection:
        spec = RestSpec.model_validate({"name": "up", "kind": "rest", "address": address, **options})
        connection = KINDS["rest"].open(spec, secrets or {}, "server1")
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        await connection.aclose()


def _rest_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "splice.outgoing"]


# -- the address, auth and headers ------------------------------------------------------------------------------


async def test_paths_join_the_address_and_default_headers_are_sent(upstream: Upstream, open_rest: Opener) -> None:
    connection = open_rest(upstream.url + "/api", headers={"X-Tenant": "acme"})
    client = connection.client(False)
    assert isinstance(client, httpx.AsyncClient)
    answer = (await client.get("/items/7", params={"q": "x"})).json()
    assert answer["path"] == "/api/items/7?q=x"
    assert answer["headers"]["X-Tenant"] == "acme"
    assert connection.client(False) is client


@pytest.mark.parametrize(
    ("secrets", "options", "header", "expected"),
    [
        ({"token": SECRET}, {}, "Authorization", f"Bearer {SECRET}"),
        ({"key": SECRET}, {}, "X-API-Key", SECRET),
        ({"key": SECRET}, {"header": "X-Billing-Key"}, "X-Billing-Key", SECRET),
        (
            {"password": SECRET},
            {"username": "ann"},
            "Authorization",
            "Basic " + base64.b64encode(f"ann:{SECRET}".encode()).decode(),
        ),
    ],
    ids=["bearer", "apikey", "apikey-own-header", "basic"],
)
async def test_auth_reaches_the_upstream_as_headers(
    upstream: Upstream,
    open_rest: Opener,
    secrets: dict[str, str],
    options: dict[str, Any],
    header: str,
    expected: str,
) -> None:
    connection = open_rest(upstream.url, secrets, **options)
    answer = (await connection.client(False).get("/auth")).json()
    assert answer["headers"][header] == expected
    blocking = await asyncio.to_thread(lambda: connection.client(True).get("/auth").json())
    assert blocking["headers"][header] == expected


@pytest.mark.parametrize(
    ("secrets", "options", "problem"),
    [
        ({"password": SECRET}, {}, "has a password but no username"),
        ({"password": SECRET, "token": SECRET}, {"username": "ann"}, "both a token and a password"),
        ({"token": SECRET + "\r\nX-Evil: 1"}, {}, "the token of REST connection 'up' holds a character"),
    ],
)
def test_open_refuses_unusable_secrets_without_showing_them(
    secrets: dict[str, str], options: dict[str, Any], problem: str
) -> None:
    spec = RestSpec.model_validate({"name": "up", "kind": "rest", "address": "http://127.0.0.1:1", **options})
    with pytest.raises(ValueError, match=problem) as refused:
        KINDS["rest"].open(spec, secrets, "server1")
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    "options", [{"header": "X Key"}, {"headers": {"X-A": "one\r\ntwo"}}, {"headers": {"Bad:Name": "x"}}]
)
def test_spec_refuses_what_is_no_header(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="header"):
        RestSpec.model_validate({"name": "up", "kind": "rest", "address": "http://127.0.0.1:1", **options})


# -- the caller's cid ---------------------------------------------------------------------------------------


async def test_every_request_carries_the_callers_cid(upstream: Upstream, open_rest: Opener) -> None:
    connection = open_rest(upstream.url)
    client = connection.client(False)
    assert "X-Splice-CID" not in (await client.get("/cid")).json()["headers"]
    token = current_cid.set("cid-async-1")
    try:
        assert (await client.get("/cid")).json()["headers"]["X-Splice-CID"] == "cid-async-1"
    finally:
        current_cid.reset(token)

    def blocking_call() -> Any:
        current_cid.set("cid-thread-2")
        return connection.client(True).get("/cid").json()

    assert (await asyncio.to_thread(blocking_call))["headers"]["X-Splice-CID"] == "cid-thread-2"


# -- the blocking client -----------------------------------------------------------------------------------------


async def test_the_blocking_client_is_one_shared_httpx_client_for_worker_threads(
    upstream: Upstream, open_rest: Opener
) -> None:
    connection = open_rest(upstream.url, max_connections=4)
    barrier = threading.Barrier(8)

    def lease_and_call(index: int) -> tuple[int, int, str]:
        barrier.wait(5)
        client = connection.client(True)
        return id(client), client.get(f"/thread/{index}").status_code, type(client).__name__

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, lease_and_call, i) for i in range(8)))
    assert {client for client, _, _ in results} == {id(connection.client(True))}
    assert {(status, kind) for _, status, kind in results} == {(200, "Client")}
    assert connection.client(True) is not connection.client(False)


# -- retries ---------------------------------------------------------------------------------------------


async def test_an_idempotent_request_is_retried_past_503s(
    upstream: Upstream, open_rest: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    connection = open_rest(upstream.url, retries=2, backoff=0.01)
    answer = await connection.client(False).get("/flaky/async-get")
    assert answer.status_code == 200
    assert len(upstream.calls("/flaky/async-get")) == 3
    assert any("/flaky/async-get -> 200 after 2 retries (503, 503)" in line for line in _rest_lines(caplog))

    blocking = await asyncio.to_thread(lambda: connection.client(True).put("/flaky/sync-put", json={"n": 1}))
    assert blocking.status_code == 200
    assert [call["body"] for call in upstream.calls("/flaky/sync-put")] == ['{"n":1}'] * 3


async def test_retries_give_up_after_the_configured_count(upstream: Upstream, open_rest: Opener) -> None:
    connection = open_rest(upstream.url, retries=1, backoff=0)
    assert (await connection.client(False).get("/flaky/gives-up")).status_code == 503
    assert len(upstream.calls("/flaky/gives-up")) == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_post_and_patch_are_never_retried(upstream: Upstream, open_rest: Opener, method: str) -> None:
    connection = open_rest(upstream.url, retries=3, backoff=0)
    path = f"/flaky/{method.lower()}-once"
    assert (await connection.client(False).request(method, path, json={})).status_code == 503
    blocking = await asyncio.to_thread(lambda: connection.client(True).request(method, path, json={}))
    assert blocking.status_code == 503
    assert len(upstream.calls(path)) == 2  # one each, no retry


async def test_a_refused_connection_is_retried_then_raises(open_rest: Opener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    port = _closed_port()
    connection = open_rest(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with pytest.raises(httpx.ConnectError):
        await connection.client(False).get("/x")
    with pytest.raises(httpx.ConnectError):
        await asyncio.to_thread(lambda: connection.client(True).get("/y"))
    with pytest.raises(httpx.ConnectError):
        await connection.client(False).post("/z")
    failures = [r for r in caplog.records if r.name == "splice.outgoing" and r.levelno == logging.WARNING]
    lines = [r.getMessage() for r in failures]
    assert any(f"GET http://127.0.0.1:{port}/x after 2 retries (ConnectError, ConnectError) failed" in x for x in lines)
    assert any(f"GET http://127.0.0.1:{port}/y after 2 retries (ConnectError, ConnectError) failed" in x for x in lines)
    assert any(f"POST http://127.0.0.1:{port}/z failed" in x for x in lines)


# -- TLS ---------------------------------------------------------------------------------------------------


async def test_ca_file_verifies_a_self_signed_upstream(tls_upstream: tuple[Upstream, Path], open_rest: Opener) -> None:
    server, cert_file = tls_upstream
    trusting = open_rest(server.url, ca_file=str(cert_file), retries=0)
    assert (await trusting.client(False).get("/tls")).json()["path"] == "/tls"
    assert await asyncio.to_thread(lambda: trusting.client(True).get("/tls").status_code) == 200

    default = open_rest(server.url, retries=0)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await default.client(False).get("/tls")

    unchecked = open_rest(server.url, verify=False, retries=0)
    assert (await unchecked.client(False).get("/tls")).status_code == 200


async def test_an_unreadable_ca_file_is_named(tmp_path: Path, open_rest: Opener) -> None:
    connection = open_rest("https://127.0.0.1:1", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(OSError, match=r"outgoing connection 'up': cannot load ca_file '.*missing\.pem'"):
        connection.client(False)


# -- the log line ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secrets", "options"),
    [({"token": SECRET}, {}), ({"key": SECRET}, {}), ({"password": SECRET}, {"username": "ann"})],
    ids=["bearer", "apikey", "basic"],
)
async def test_one_log_line_per_call_and_never_a_secret(
    upstream: Upstream,
    open_rest: Opener,
    caplog: pytest.LogCaptureFixture,
    secrets: dict[str, str],
    options: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx's, httpcore's and httpx-retries' own lines too
    connection = open_rest(upstream.url, secrets, **options)
    assert (await connection.client(False).get("/logged", params={"api_key": "in-the-query"})).status_code == 200
    await asyncio.to_thread(lambda: connection.client(True).delete("/logged/sync"))
    lines = _rest_lines(caplog)
    assert len([x for x in lines if "/logged" in x]) == 2
    assert any(f"rest up: GET {upstream.url}/logged -> 200 in " in x and x.endswith(" ms") for x in lines)
    assert any(f"rest up: DELETE {upstream.url}/logged/sync -> 200 in " in x for x in lines)
    assert not any("in-the-query" in x for x in lines)
    encoded = base64.b64encode(f"ann:{SECRET}".encode()).decode()
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.__dict__!r}"
        assert SECRET not in text, record.name
        assert encoded not in text, record.name


# -- closing, ping -----------------------------------------------------------------------------------------


async def test_aclose_closes_both_clients(upstream: Upstream, open_rest: Opener) -> None:
    connection = open_rest(upstream.url)
    asynchronous, blocking = connection.client(False), connection.client(True)
    await asynchronous.get("/before-close")
    await connection.aclose()
    assert asynchronous.is_closed
    assert blocking.is_closed
    with pytest.raises(RuntimeError, match="outgoing connection 'up' was closed"):
        connection.client(False)


async def test_a_client_a_service_closed_is_made_anew(upstream: Upstream, open_rest: Opener) -> None:
    connection = open_rest(upstream.url)
    first = connection.client(False)
    async with first:
        await first.get("/closed-by-a-service")
    second = connection.client(False)
    assert second is not first
    assert (await second.get("/after")).status_code == 200
    blocking = connection.client(True)
    blocking.close()
    assert connection.client(True) is not blocking


async def test_ping_answers_any_http_status(upstream: Upstream, open_rest: Opener) -> None:
    detail = await open_rest(upstream.url + "/status/404").ping()
    assert detail.startswith("HTTP 404 in ")
    assert detail.endswith(f" ms from {upstream.url}/status/404")
    assert upstream.calls("/status/404")[-1]["method"] == "HEAD"

    detail = await open_rest(upstream.url + "/no-head").ping()
    assert detail.startswith("HTTP 200 in ")
    assert [call["method"] for call in upstream.calls("/no-head")][-2:] == ["HEAD", "GET"]


async def test_ping_to_a_closed_port_raises(open_rest: Opener) -> None:
    connection = open_rest(f"http://127.0.0.1:{_closed_port()}", retries=5, backoff=10)
    with pytest.raises(httpx.ConnectError):
        await connection.ping()  # not retried: with these retries it would take minutes
