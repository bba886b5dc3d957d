"""WebSocket channels on a real server (Hypercorn serving the app in this process) with a real client (websockets).

Request and reply, server push (to one connection and to a channel), security at the handshake, the limits
(message size, idle timeout), errors that keep the socket open, the order of one connection's messages,
concurrency across connections, and closing when the channel goes and when the server stops.
"""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from splice.server.bootstrap import build_runtime, serve
from splice.server.channels.specs import WebSocketChannel, channel_columns
from splice.server.cli.cluster import quickstart_create
from splice.server.config import load_settings
from splice.server.http.websocket import ping_interval
from splice.server.runtime import Runtime
from tests.conftest import free_ports

SERVICES = textwrap.dedent(
    '''
    import asyncio

    from splice.server import Service

    released = asyncio.Event()
    active = 0


    class Echo(Service):
        """Answers what came, and how: channel, connection, path parameters, query, headers."""

        name = "ws.echo"

        async def handle(self):
            payload = self.request.payload
            if isinstance(payload, bytes):
                self.response.payload = payload[::-1]
                return
            if payload == "close":
                self.websocket.close(4000, "asked to")
            self.response.payload = {
                "got": payload,
                "channel": self.request.channel,
                "id": self.websocket.id,
                "room": self.request.path_params.get("room"),
                "query": dict(self.request.query),
                "agent": self.request.headers.get("x-agent"),
            }


    class Quiet(Service):
        name = "ws.quiet"

        def handle(self):
            pass


    class Fail(Service):
        name = "ws.fail"

        def handle(self):
            if self.request.payload.get("fail"):
                raise ValueError("the warehouse is on fire")
            self.response.payload = {"ok": True}


    class Register(Service):
        """A blocking handle: tells its connection's id, and says hello on it first."""

        name = "ws.register"

        def handle(self):
            self.websocket.send({"hello": self.websocket.channel})
            self.response.payload = {"id": self.websocket.id, "websocket": repr(self.websocket)}


    class Push(Service):
        """Another call (not over a WebSocket) pushing to one connection (blocking) or to a channel (async)."""

        name = "ws.push"

        def handle(self):
            self.websockets.send(self.request.payload["to"], {"push": self.request.payload["text"]})
            self.response.payload = {"connected": self.websockets.connected(), "mine": self.websocket}


    class Shout(Service):
        name = "ws.shout"

        async def handle(self):
            reached = await self.websockets.abroadcast(self.request.payload["channel"], {"shout": "hi"})
            self.response.payload = {"reached": reached}


    class Misuse(Service):
        name = "ws.misuse"

        async def handle(self):
            self.websockets.send("nobody", {})


    class Slow(Service):
        """Overlapping calls on one connection would show as active > 1, or as answers out of order."""

        name = "ws.slow"

        async def handle(self):
            global active
            active += 1
            try:
                await asyncio.sleep(self.request.payload["sleep"])
                self.response.payload = {"n": self.request.payload["n"], "active": active}
            finally:
                active -= 1


    class Gate(Service):
        """{"wait": true} waits until another connection sends {"release": true}."""

        name = "ws.gate"

        async def handle(self):
            if self.request.payload.get("release"):
                released.set()
            else:
                await asyncio.wait_for(released.wait(), 10)
            self.response.payload = {"done": self.request.payload}
    '''
)


@dataclass
class Live:
    runtime: Runtime
    shutdown: asyncio.Event
    admin: httpx.AsyncClient
    ws: str

    async def channel(self, name: str, path: str, service: str, **options: Any) -> None:
        body = {"name": name, "kind": "websocket", "path": path, "service": service, **options}
        answer = await self.admin.post("/splice/admin/channels", json=body)
        assert answer.status_code == 201, answer.text


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """A one-server cluster served by Hypercorn in this process, the services above deployed."""
    directory = tmp_path / "cluster"
    port = free_ports(2)
    await asyncio.to_thread(quickstart_create, directory, port, None, None, 1, None, False)
    shutdown = asyncio.Event()
    runtime = await build_runtime(load_settings(directory), "server1", shutdown)
    # A channel there at start sets Hypercorn's one ping interval: short, as Hypercorn keeps a closed connection's
    # task until its next ping is due, and waits for it when the server stops.
    pinger = channel_columns(
        WebSocketChannel(name="pinger", kind="websocket", path="/p", service="ws.echo", ping_interval=0.2)
    )
    await runtime.repository.create_channel("pinger", "/p", [], "ws.echo", None, "websocket", pinger["options"])
    await runtime.live.reload()
    assert ping_interval(runtime.live.of("websocket")) == 0.2
    task = asyncio.create_task(serve(runtime, shutdown))
    token = (directory / "admin-token").read_text().strip()
    url = runtime.server.url
    try:
        # The admin client closes before the server stops: Hypercorn waits for open connections at shutdown.
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as admin:
            for _ in range(200):
                try:
                    if (await admin.get("/splice/ping")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            body = {"modules": [{"path": "ws.py", "source": SERVICES}]}
            deployed = await admin.post("/splice/admin/deploy", json=body)
            assert deployed.status_code == 200, deployed.text
            yield Live(runtime, shutdown, admin, url.replace("http://", "ws://"))
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize(
    ("intervals", "expected"), [((), None), ((None,), None), ((60.0,), 60.0), ((60.0, None, 5.0, 7.5), 5.0)]
)
def test_the_server_pings_at_the_smallest_interval_its_channels_ask_for_and_not_at_all_by_default(
    intervals: tuple[float | None, ...], expected: float | None
) -> None:
    channels = [
        WebSocketChannel(name=f"c{i}", kind="websocket", path=f"/c{i}", service="s", ping_interval=interval)
        for i, interval in enumerate(intervals)
    ]
    assert ping_interval(channels) == expected


def client(live: Live, path: str, **options: Any) -> connect:
    return connect(live.ws + path, proxy=None, open_timeout=10, **options)


async def ask(ws: ClientConnection, value: Any) -> Any:
    await ws.send(json.dumps(value, ensure_ascii=False))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def forgotten(live: Live, channel: str) -> None:
    """Wait until the server forgot the connections of ``channel`` (just after they closed)."""
    for _ in range(200):
        if not live.runtime.invoker.websockets.connected(channel):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"connections of {channel} still open: {live.runtime.invoker.websockets.connected(channel)}")


async def closed(ws: ClientConnection) -> tuple[int, str]:
    """The code and reason the server closed ``ws`` with (waiting for it)."""
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None, "the server closed without a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_each_message_invokes_the_service_and_gets_its_answer(live: Live) -> None:
    await live.channel("echo", "/rooms/{room}", "ws.echo")
    async with client(live, "/rooms/blue?mood=calm", additional_headers={"X-Agent": "tests"}) as ws:
        first = await ask(ws, {"hello": "world"})
        assert first["got"] == {"hello": "world"}
        assert first["channel"] == "echo"
        assert first["room"] == "blue"
        assert first["query"] == {"mood": "calm"}
        assert first["agent"] == "tests"
        assert (await ask(ws, [1, 2]))["got"] == [1, 2]
        assert (await ask(ws, "text"))["got"] == "text"
        await ws.send(b"\x00\x01\x02")  # binary in, binary out
        assert await asyncio.wait_for(ws.recv(), 10) == b"\x02\x01\x00"
        assert (await ask(ws, None))["id"] == first["id"]  # one connection, one id

        answer = await ask(ws, "close")  # the service asked to close: its answer comes first
        assert answer["got"] == "close"
        assert await closed(ws) == (4000, "asked to")

    with pytest.raises(InvalidStatus) as refused:  # no channel at that path
        async with client(live, "/nowhere"):
            pass
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["code"] == "not_found"


async def test_no_answer_when_the_payload_is_none(live: Live) -> None:
    await live.channel("quiet", "/quiet", "ws.quiet")
    await live.channel("echo", "/echo", "ws.echo")
    async with client(live, "/quiet") as ws:
        await ws.send("{}")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await ws.ping()  # still open


async def test_errors_answer_and_keep_the_socket_open(live: Live) -> None:
    await live.channel("fail", "/fail", "ws.fail")
    async with client(live, "/fail") as ws:
        failed = await ask(ws, {"fail": True})
        assert failed["error"]["code"] == "service_failed"
        assert "ValueError: the warehouse is on fire" in failed["error"]["message"]
        assert len(failed["cid"]) == 24
        assert "traceback" not in json.dumps(failed).lower()

        await ws.send("{not json")
        invalid = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert invalid["error"]["code"] == "bad_request"
        assert invalid["error"]["message"].startswith("the message is not valid JSON")

        assert await ask(ws, {"fail": False}) == {"ok": True}
        other = await ask(ws, {"fail": True})
        assert other["cid"] != failed["cid"]  # a fresh cid per message


async def test_services_push_to_one_connection_and_to_a_channel(live: Live) -> None:
    await live.channel("news", "/news", "ws.register")
    await live.channel("other", "/other", "ws.register")
    async with client(live, "/news") as first, client(live, "/news") as second, client(live, "/other") as third:
        ids = []
        for ws, channel in ((first, "news"), (second, "news"), (third, "other")):
            assert await ask(ws, None) == {"hello": channel}  # sent by the service before its answer
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer["websocket"] == f"<WebSocket {answer['id']} on channel {channel}>"
            ids.append(answer["id"])

        pushed = await live.admin.post(
            "/splice/admin/invoke", json={"service": "ws.push", "payload": {"to": ids[1], "text": "for you"}}
        )
        assert pushed.status_code == 200, pushed.text
        assert json.loads(await asyncio.wait_for(second.recv(), 10)) == {"push": "for you"}
        connected = pushed.json()["payload"]["connected"]
        assert sorted((c["id"], c["channel"]) for c in connected) == sorted(
            zip(ids, ["news", "news", "other"], strict=True)
        )
        assert all(c["remote"].startswith("127.0.0.1:") and c["since"].endswith("+00:00") for c in connected)
        assert pushed.json()["payload"]["mine"] is None  # this call came over no WebSocket

        shout = await live.admin.post(
            "/splice/admin/invoke", json={"service": "ws.shout", "payload": {"channel": "news"}}
        )
        assert shout.json()["payload"] == {"reached": 2}
        for ws in (first, second):
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"shout": "hi"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(third.recv(), 0.3)

    await forgotten(live, "news")
    gone = await live.admin.post(
        "/splice/admin/invoke", json={"service": "ws.push", "payload": {"to": ids[0], "text": "x"}}
    )
    assert gone.status_code == 500
    assert f"NotConnected: no WebSocket connection '{ids[0]}' is open on this server" in gone.text
    misuse = await live.admin.post("/splice/admin/invoke", json={"service": "ws.misuse"})
    assert "inside 'async def handle' use 'await self.websockets.asend(...)'" in misuse.json()["error"]["message"]


async def test_the_handshake_checks_the_channels_security(live: Live) -> None:
    for body in (
        {"name": "robots", "kind": "apikey", "key": "k3y-0f-r0b0ts"},
        {"name": "people", "kind": "basic", "username": "ann", "password": "s3cret"},
    ):
        assert (await live.admin.post("/splice/admin/security", json=body)).status_code == 201
    await live.channel("keyed", "/keyed", "ws.echo", security="robots")
    await live.channel("basic", "/basic", "ws.echo", security="people")

    for path, headers in (
        ("/keyed", {}),
        ("/keyed?api_key=wrong", {}),
        ("/keyed", {"X-API-Key": "wrong"}),
        ("/basic", {}),
        ("/basic?api_key=s3cret", {}),
        ("/basic", {"Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()}),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with client(live, path, additional_headers=headers):
                pass
        response = refused.value.response
        assert response.status_code == 401, (path, headers)
        assert json.loads(response.body)["error"]["code"] == "unauthorized"
        assert (response.headers.get("WWW-Authenticate") == 'Basic realm="splice"') == path.startswith("/basic")

    for path, headers in (
        ("/keyed", {"X-API-Key": "k3y-0f-r0b0ts"}),
        ("/keyed?api_key=k3y-0f-r0b0ts&mood=calm", {}),
        ("/basic", {"Authorization": "Basic " + base64.b64encode(b"ann:s3cret").decode()}),
    ):
        async with client(live, path, additional_headers=headers) as ws:
            answer = await ask(ws, "in")
            assert answer["got"] == "in"
            assert "api_key" not in answer["query"]  # the key is no input of the service


async def test_a_message_over_the_channels_limit_closes_with_1009(live: Live) -> None:
    await live.channel("small", "/small", "ws.echo", max_message=64)
    async with client(live, "/small") as ws:
        assert (await ask(ws, "é" * 20))["got"] == "é" * 20  # 42 bytes
        await ws.send(json.dumps("é" * 40, ensure_ascii=False))  # 82 bytes, 42 characters
        code, reason = await closed(ws)
        assert code == 1009
        assert "64 bytes" in reason
    async with client(live, "/small") as ws:
        await ws.send(b"\x00" * 65)
        assert (await closed(ws))[0] == 1009


async def test_a_connection_idle_for_too_long_is_closed(live: Live) -> None:
    await live.channel("brief", "/brief", "ws.echo", idle_timeout=0.5)
    async with client(live, "/brief") as ws:
        assert (await ask(ws, 1))["got"] == 1
        assert await closed(ws) == (1000, "idle for 0.5 s")
    await forgotten(live, "brief")


async def test_one_connections_messages_run_one_at_a_time_in_order(live: Live) -> None:
    await live.channel("slow", "/slow", "ws.slow")
    async with client(live, "/slow") as ws:
        for n, sleep in enumerate([0.3, 0.0, 0.1, 0.0]):
            await ws.send(json.dumps({"n": n, "sleep": sleep}))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
    assert answers == [{"n": n, "active": 1} for n in range(4)]


async def test_different_connections_run_concurrently(live: Live) -> None:
    await live.channel("gate", "/gate", "ws.gate")
    async with client(live, "/gate") as waiting, client(live, "/gate") as releasing:
        await waiting.send(json.dumps({"wait": True}))
        assert await ask(releasing, {"release": True}) == {"done": {"release": True}}
        assert json.loads(await asyncio.wait_for(waiting.recv(), 10)) == {"done": {"wait": True}}


async def test_connections_close_when_their_channel_goes_and_when_the_server_stops(live: Live) -> None:
    await live.channel("a", "/a", "ws.echo")
    await live.channel("b", "/b", "ws.echo")
    async with client(live, "/a") as a, client(live, "/b") as b:
        assert (await ask(a, 1))["got"] == 1
        assert (await ask(b, 2))["got"] == 2
        assert (await live.admin.delete("/splice/admin/channels/a")).status_code == 200
        assert await closed(a) == (1001, "the channel was removed")
        assert (await ask(b, 3))["got"] == 3

        live.shutdown.set()
        assert await closed(b) == (1001, "the server is shutting down")
