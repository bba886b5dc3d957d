"""A server's connections: kept while unchanged, reopened when changed, the old one closed after its last call."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from splice.server.connections import ClusterKey, Connections, ConnectionUnusable
from splice.server.core.outgoing import Out, UnknownConnection


class _Tagged(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.server_port}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstreams() -> Iterator[list[str]]:
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tagged) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_port}" for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def _row(name: str, address: str, kind: str = "rest", secrets: str | None = None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "config": {"name": name, "kind": kind, "address": address}, "secrets": secrets}


@pytest.fixture
async def connections(tmp_path: Path) -> Any:
    held = Connections("server1", lambda: ClusterKey.load(tmp_path, environ={}))
    yield held
    await held.close()


async def test_an_unchanged_connection_keeps_its_client(connections: Connections, upstreams: list[str]) -> None:
    await connections.reload([_row("up", upstreams[0])])
    first, release = connections.lease("rest", "up", blocking=False)
    release()
    await connections.reload([_row("up", upstreams[0]), _row("other", upstreams[1])])
    again, release = connections.lease("rest", "up", blocking=False)
    release()
    assert again is first
    assert connections.names("rest") == ["other", "up"]


async def test_a_changed_connection_serves_new_calls_and_closes_the_old_after_its_last_call(
    connections: Connections, upstreams: list[str]
) -> None:
    await connections.reload([_row("up", upstreams[0])])
    running = Out(connections)
    old = running.rest["up"]  # a call under way holds it
    await connections.reload([_row("up", upstreams[1])])
    new, release = connections.lease("rest", "up", blocking=False)
    assert new is not old
    assert (await new.get("/")).text == upstreams[1].rsplit(":", 1)[1]
    release()
    assert (await old.get("/")).text == upstreams[0].rsplit(":", 1)[1]  # still open for the call that took it
    assert not old.is_closed
    running.release()  # that call ends
    for _ in range(200):
        if old.is_closed:
            break
        await asyncio.sleep(0.01)
    assert old.is_closed


async def test_a_removed_connection_is_unknown_with_the_names_that_are(
    connections: Connections, upstreams: list[str]
) -> None:
    await connections.reload([_row("billing", upstreams[0]), _row("crm", "sqlite:///crm.db", kind="sql")])
    with pytest.raises(UnknownConnection, match=r"no rest connection named 'biling'.*billing.*did you mean 'billing'"):
        connections.lease("rest", "biling", blocking=False)
    with pytest.raises(UnknownConnection, match=r"'crm' is of kind sql, not rest: use self.out.sql\['crm'\]"):
        connections.lease("rest", "crm", blocking=False)
    await connections.reload([])
    with pytest.raises(UnknownConnection, match="known rest connections: none"):
        connections.lease("rest", "billing", blocking=False)


async def test_a_connection_this_server_cannot_open_says_why_at_use_and_ping(
    connections: Connections, upstreams: list[str]
) -> None:
    foreign = ClusterKey(Fernet.generate_key(), "elsewhere").encrypt({"token": "t"})
    await connections.reload([_row("up", upstreams[0], secrets=foreign)])
    assert connections.names("rest") == ["up"]
    with pytest.raises(ConnectionUnusable, match="cannot decrypt the secrets of outgoing connection 'up'"):
        connections.lease("rest", "up", blocking=False)
    answer = await connections.ping("up")
    assert answer["ok"] is False
    assert "cannot decrypt" in answer["error"]


async def test_ping_answers_per_server(connections: Connections, upstreams: list[str]) -> None:
    await connections.reload([_row("up", upstreams[0]), _row("closed", "http://127.0.0.1:9")])
    good = await connections.ping("up")
    assert good["server"] == "server1"
    assert good["ok"] is True
    assert good["ms"] >= 0
    bad = await connections.ping("closed")
    assert bad["ok"] is False
    assert bad["error"]
    missing = await connections.ping("nope")
    assert missing == {
        "server": "server1",
        "ok": False,
        "ms": 0.0,
        "error": "this server has no outgoing connection 'nope'",
    }
