"""Admin API bodies are limited per operation, and refused before they are read: a real server's RSS does not grow
for a 100 MB body, whether it says its length (``Content-Length``) or streams it (chunked)."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, make_cluster, running

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path_factory.mktemp("bodies") / "cluster")) as made:
        yield made


def _rss_mb(cluster: Cluster) -> float:
    pid = int((cluster.directory / "server1" / "server.pid").read_text().split()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _send(cluster: Cluster, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, dict]:
    """A raw HTTP/1.1 request that stops sending once the server has answered; returns the status and JSON body."""
    host, port = cluster.url.removeprefix("http://").split(":")
    head = [f"POST /splice/admin{path} HTTP/1.1", f"host: {host}", f"authorization: Bearer {cluster.token}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.settimeout(5)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body was sent whole
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break  # the server stopped reading: its answer is on the way
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    head_text, _, body = answer.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(body)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def _zeros(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"0" * size
        sent += size


def _chunked(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    for chunk in _zeros(total, size):
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def test_content_length_over_the_limit_is_413_before_reading(real: Cluster) -> None:
    before = _rss_mb(real)
    headers = {"content-type": "application/json", "content-length": str(100 * 1000 * 1000)}
    status, body = _send(real, "/deploy", headers, _zeros(100 * 1000 * 1000))
    assert status == 413, body
    grown = _rss_mb(real) - before
    assert grown < 20, f"the server grew by {grown:.0f} MB reading a body it refuses"
    assert body["error"]["code"] == "too_large"
    limit = 64 * MiB
    assert body["error"]["message"] == (
        f"the request body has 100000000 bytes, more than {limit} bytes (64 x deploy.max_module_bytes (1048576);"
        " deploy fewer modules per call)"
    )
    assert body["cid"]


def test_streamed_body_is_refused_once_past_the_limit(real: Cluster) -> None:
    before = _rss_mb(real)
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    status, body = _send(real, "/undeploy", headers, _chunked(100 * 1000 * 1000))
    assert status == 413, body
    grown = _rss_mb(real) - before
    assert grown < 20, f"the server grew by {grown:.0f} MB reading a body it refuses"
    assert body["error"]["message"] == (
        f"the request body is larger than {MiB} bytes (the limit of POST /splice/admin/undeploy)"
    )


def test_bodies_within_their_limits_are_read(real: Cluster) -> None:
    with real.admin() as admin:
        # A module of 1.5 MiB: over the small endpoints' 1 MiB, within a deploy's limit (refused by the engine).
        source = "x = 1\n" + "#" * int(1.5 * MiB)
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "big.py", "source": source}]})
        assert answer.status_code == 422, answer.text
        assert "the limit is 1048576" in answer.json()["error"]["message"]
        answer = admin.post("/splice/admin/undeploy", json={"paths": ["x" * (2 * MiB)]})
        assert answer.status_code == 413, answer.text
