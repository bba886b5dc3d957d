"""Pub/sub over WebSocket (``/splice/pubsub/ws``) on a real server (Hypercorn in this process) with a real client.

Credentials at the handshake, messages of a pull subscription pushed with at most ``max_in_flight`` unacknowledged,
acks and nacks, publishing, refusals that keep the socket open, the frame size limit, and unacknowledged
messages going back to the queue when the socket closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from splice.server.bootstrap import build_runtime, serve
from splice.server.cli.cluster import quickstart_create
from splice.server.config import load_settings
from splice.server.runtime import Runtime
from tests.conftest import free_ports
from tests.server.http._pubsub import PARTNER, PEOPLE, ROBOTS, permit, securities, subscription, topic

WS = "/splice/pubsub/ws"


@dataclass
class Live:
    runtime: Runtime
    shutdown: asyncio.Event
    http: httpx.AsyncClient
    """A client of the server (no credentials of its own)."""
    ws: str

    def connect(self, headers: dict[str, str] | None = PARTNER, query: str = "") -> connect:
        return connect(self.ws + WS + query, proxy=None, open_timeout=10, additional_headers=headers or {})

    async def publish(self, topic: str, data: Any) -> dict[str, Any]:
        answer = await self.http.post(f"/splice/pubsub/topics/{topic}", json=data, headers=PARTNER)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """A one-server cluster on SQLite served by Hypercorn: partner may publish to and subscribe to orders.*,
    robots may subscribe to invoices.*; subscription order-feed reads orders.*."""
    directory = tmp_path / "cluster"
    port = free_ports(2)
    await asyncio.to_thread(quickstart_create, directory, port, None, None, 1, None, False)
    shutdown = asyncio.Event()
    runtime = await build_runtime(load_settings(directory), "server1", shutdown)
    task = asyncio.create_task(serve(runtime, shutdown))
    token = (directory / "admin-token").read_text().strip()
    url = runtime.server.url
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for _ in range(200):
                try:
                    if (await http.get("/splice/ping")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            http.headers["Authorization"] = f"Bearer {token}"
            await securities(http)
            del http.headers["Authorization"]
            for name in ("orders.created", "orders.shipped", "invoices.paid"):
                await topic(runtime, name)
            await permit(runtime, "partner", publish=["orders.*"], subscribe=["orders.*"])
            await permit(runtime, "robots", publish=[], subscribe=["invoices.*"])
            await subscription(runtime, "order-feed", "orders.*")
            yield Live(runtime, shutdown, http, url.replace("http://", "ws://"))
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 30)


async def ask(ws: ClientConnection, value: Any) -> dict[str, Any]:
    await ws.send(json.dumps(value))
    return await receive(ws)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return answer


async def nothing_more(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.5)


async def test_the_handshake_needs_credentials(live: Live) -> None:
    for headers, query in (
        (None, ""),
        ({"X-API-Key": "wrong"}, ""),
        (None, "?api_key=wrong"),
        ({"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}, ""),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with live.connect(headers, query):
                pass
        response = refused.value.response
        assert response.status_code == 401, (headers, query)
        assert json.loads(response.body)["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="splice"'
    for headers, query in (
        (PARTNER, ""),
        (None, "?api_key=" + PARTNER["X-API-Key"]),
        (None, "?api_key=" + ROBOTS["X-Robot-Key"]),  # any API-key definition's header
        (PEOPLE, ""),
    ):
        async with live.connect(headers, query) as ws:
            answer = await ask(ws, {"op": "nope", "ref": 1})
            assert answer["op"] == "error"
            assert answer["ref"] == 1


async def test_messages_are_pushed_at_most_max_in_flight_at_a_time_and_acked(live: Live) -> None:
    await subscription(live.runtime, "parallel", "orders.*", ordered=False)
    async with live.connect() as ws:
        subscribed = await ask(ws, {"op": "subscribe", "subscription": "parallel", "max_in_flight": 2, "ref": "s"})
        assert subscribed == {
            "op": "subscribed",
            "subscription": "parallel",
            "topic": "orders.*",
            "max_in_flight": 2,
            "ref": "s",
        }
        for n in range(3):
            await live.publish("orders.created", {"n": n})
        first, second = await receive(ws), await receive(ws)
        assert [m["message"]["data"] for m in (first, second)] == [{"n": 0}, {"n": 1}]
        assert first["op"] == "message"
        assert first["subscription"] == "parallel"
        assert first["attempt"] == 1
        assert first["message"]["publisher"] == "rest:partner"
        await nothing_more(ws)  # two unacknowledged: the third waits

        acked = await ask(ws, {"op": "ack", "ids": [first["delivery"]], "ref": "a"})
        assert acked == {"op": "acked", "ids": [first["delivery"]], "count": 1, "ref": "a"}
        third = await receive(ws)
        assert third["message"]["data"] == {"n": 2}
        await ws.send(json.dumps({"op": "ack", "ids": [second["delivery"], third["delivery"]]}))  # no ref, no answer

        await live.publish("orders.shipped", {"n": 3})
        fourth = await receive(ws)
        assert fourth["message"]["data"] == {"n": 3}  # after the silent ack: nothing else came before it
        again = await ask(ws, {"op": "ack", "ids": [first["delivery"]], "ref": "b"})
        assert again["op"] == "error"
        assert again["error"]["code"] == "not_found"
        assert "not waiting for an acknowledgement on this connection" in again["error"]["message"]

        unsubscribed = await ask(ws, {"op": "unsubscribe", "subscription": "parallel"})
        assert unsubscribed == {"op": "unsubscribed", "subscription": "parallel", "released": 1}
    depths = await live.runtime.repository.depths(["parallel"])
    assert (depths["parallel"].ready, depths["parallel"].in_flight) == (1, 0)  # the fourth, given back


async def test_an_ordered_subscription_sends_the_next_messages_once_those_in_flight_are_acked(live: Live) -> None:
    for n in range(4):
        await live.publish("orders.created", {"n": n})
    async with live.connect() as ws:
        await ask(ws, {"op": "subscribe", "subscription": "order-feed", "max_in_flight": 2})
        first, second = await receive(ws), await receive(ws)
        assert [m["message"]["data"] for m in (first, second)] == [{"n": 0}, {"n": 1}]
        await ask(ws, {"op": "ack", "ids": [first["delivery"]], "ref": 1})
        await nothing_more(ws)  # in order: the second is still out
        await ask(ws, {"op": "ack", "ids": [second["delivery"]], "ref": 2})
        rest = [await receive(ws), await receive(ws)]
        assert [m["message"]["data"] for m in rest] == [{"n": 2}, {"n": 3}]


async def test_publish_over_the_socket(live: Live) -> None:
    await subscription(live.runtime, "shipping", "orders.shipped")
    async with live.connect() as ws:
        published = await ask(
            ws,
            {"op": "publish", "topic": "orders.shipped", "data": {"box": 1}, "key": "box-1", "ref": "p1"},
        )
        assert published["op"] == "published"
        assert published["ref"] == "p1"
        assert published["topic"] == "orders.shipped"
        assert published["subscriptions"] == 2
        assert published["duplicate"] is False
        duplicate = await ask(ws, {"op": "publish", "topic": "orders.shipped", "data": {}, "key": "box-1"})
        assert duplicate["duplicate"] is True
        raw = base64.b64encode(b"\x00\xffbytes").decode()
        binary = await ask(
            ws,
            {"op": "publish", "topic": "orders.shipped", "data": raw, "encoding": "base64", "headers": {"a": "b"}},
        )
        assert binary["op"] == "published"

        refused = await ask(ws, {"op": "publish", "topic": "invoices.paid", "data": 1, "ref": "p2"})
        assert refused["op"] == "error"
        assert refused["ref"] == "p2"
        assert refused["error"] == {
            "code": "forbidden",
            "message": "security definition 'partner' may not publish to 'invoices.paid'; it may publish to: orders.*",
        }
        unknown = await ask(ws, {"op": "publish", "topic": "orders.nope", "data": 1})
        assert unknown["error"]["code"] == "topic_not_found"

        subscribed = await ask(ws, {"op": "subscribe", "subscription": "shipping"})
        assert subscribed["op"] == "subscribed"
        pushed = [await receive(ws), await receive(ws)]
        assert pushed[0]["message"]["data"] == {"box": 1}
        assert pushed[0]["message"]["key"] == "box-1"
        assert pushed[0]["message"]["publisher"] == "ws:partner"
        assert pushed[1]["message"]["encoding"] == "base64"
        assert base64.b64decode(pushed[1]["message"]["data"]) == b"\x00\xffbytes"
        assert pushed[1]["message"]["headers"] == {"a": "b"}


async def test_unacknowledged_messages_are_delivered_again_after_the_socket_closes(live: Live) -> None:
    for n in range(3):
        await live.publish("orders.created", {"n": n})
    async with live.connect() as ws:
        await ask(ws, {"op": "subscribe", "subscription": "order-feed", "max_in_flight": 5})
        got = [await receive(ws) for _ in range(3)]
        assert [m["message"]["data"] for m in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
        await ws.send(json.dumps({"op": "ack", "ids": [got[0]["delivery"]], "ref": 1}))
        assert (await receive(ws))["count"] == 1
    # closed with two unacknowledged: they go back at once, and another reader gets them
    async with live.connect() as ws:
        await ask(ws, {"op": "subscribe", "subscription": "order-feed"})
        again = [await receive(ws), await receive(ws)]
        assert [m["message"]["data"] for m in again] == [{"n": 1}, {"n": 2}]
        assert [m["delivery"] for m in again] == [m["delivery"] for m in got[1:]]
        assert [m["attempt"] for m in again] == [1, 1]  # a socket closing counts no attempt
        nacked = await ask(ws, {"op": "nack", "ids": [again[0]["delivery"]], "error": "not now", "ref": 2})
        assert nacked["op"] == "nacked"


async def test_refusals_keep_the_socket_open(live: Live) -> None:
    await subscription(live.runtime, "invoice-feed", "invoices.*")
    await subscription(live.runtime, "mailer", "orders.*", service="mail")
    async with live.connect() as ws:
        await ws.send("{not json")
        assert (await receive(ws))["error"]["code"] == "bad_request"
        assert (await ask(ws, [1]))["error"]["code"] == "bad_request"
        unknown_op = await ask(ws, {"op": "dance"})
        assert "op: must be one of subscribe, unsubscribe, ack, nack, publish" in unknown_op["error"]["message"]
        extra = await ask(ws, {"op": "subscribe", "subscription": "order-feed", "colour": "red"})
        assert "colour: unknown field" in extra["error"]["message"]
        missing = await ask(ws, {"op": "subscribe", "subscription": "order-fed"})
        assert missing["error"]["message"] == (
            "no subscription named 'order-fed' (did you mean 'order-feed'?); subscriptions 'partner' may read: "
            "order-feed"
        )
        forbidden = await ask(ws, {"op": "subscribe", "subscription": "invoice-feed"})
        assert forbidden["error"]["code"] == "forbidden"
        assert "may not read subscription 'invoice-feed'" in forbidden["error"]["message"]
        push = await ask(ws, {"op": "subscribe", "subscription": "mailer"})
        assert push["error"]["code"] == "conflict"
        bad = await ask(ws, {"op": "subscribe", "subscription": "order-feed", "max_in_flight": 0})
        assert "max_in_flight" in bad["error"]["message"]
        assert (await ask(ws, {"op": "subscribe", "subscription": "order-feed"}))["op"] == "subscribed"
        twice = await ask(ws, {"op": "subscribe", "subscription": "order-feed"})
        assert "already subscribed on this connection" in twice["error"]["message"]
        not_mine = await ask(ws, {"op": "unsubscribe", "subscription": "invoice-feed"})
        assert not_mine["error"]["code"] == "not_found"


async def test_a_subscription_removed_while_read_ends_with_an_error(live: Live) -> None:
    await subscription(live.runtime, "brief", "orders.*")
    async with live.connect() as ws:
        assert (await ask(ws, {"op": "subscribe", "subscription": "brief"}))["op"] == "subscribed"
        await live.runtime.repository.delete_subscription("brief")
        await live.runtime.config_changed("subscription:brief")
        ended = await receive(ws)  # at the pump's next pull (its wait ends, or a message wakes it)
        assert ended["op"] == "error"
        assert ended["subscription"] == "brief"
        assert ended["error"]["code"] == "not_found"


async def test_a_frame_over_the_limit_closes_with_1009(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send(json.dumps({"op": "publish", "topic": "orders.created", "data": "x" * (1024 * 1024)}))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009


async def test_sockets_close_when_the_server_stops(live: Live) -> None:
    async with live.connect() as ws:
        assert (await ask(ws, {"op": "subscribe", "subscription": "order-feed"}))["op"] == "subscribed"
        live.shutdown.set()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1001


def pulls_waiting(live: Live, subscription: str) -> int:
    """How many pulls of ``subscription`` wait for a message on the server (the broker's doorbell listeners)."""
    return len(live.runtime.broker.bells._listeners.get(subscription, ()))


async def test_a_long_poll_whose_client_went_away_claims_nothing(live: Live) -> None:
    """Over REST (it needs a real server to see the client go): the pull waiting for that client is cancelled."""
    host, port = live.runtime.server.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    request = (
        "GET /splice/pubsub/subscriptions/order-feed/messages?wait=60 HTTP/1.1\r\n"
        f"Host: {host}\r\nX-API-Key: {PARTNER['X-API-Key']}\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    for _ in range(200):
        if pulls_waiting(live, "order-feed"):
            break
        await asyncio.sleep(0.05)
    assert pulls_waiting(live, "order-feed") == 1
    writer.close()
    await writer.wait_closed()
    for _ in range(200):
        if not pulls_waiting(live, "order-feed"):
            break
        await asyncio.sleep(0.05)
    assert pulls_waiting(live, "order-feed") == 0, "the pull still waits for a client that went away"

    await live.publish("orders.created", {"for": "whoever is there"})
    pulled = await live.http.get(
        "/splice/pubsub/subscriptions/order-feed/messages", params={"wait": 10}, headers=PARTNER
    )
    assert [m["message"]["data"] for m in pulled.json()["messages"]] == [{"for": "whoever is there"}]
