"""AMQP connections against the real RabbitMQ of this machine (127.0.0.1:5672, guest/guest).

Each test declares its own queues and exchanges with random names and deletes them; messages are read back with
a separate aio-pika connection, as a consumer elsewhere would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import anyio.to_thread
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from pydantic import ValidationError

from splice.server.connections import KINDS, Connection
from splice.server.connections.amqp import AmqpSpec, NoExchange, Unroutable, encode
from splice.server.core.context import CidFilter, current_cid
from tests.amqp_broker import ADDRESS, PASSWORD

Opener = Callable[..., Connection]


@pytest.fixture
async def broker() -> AsyncIterator[AbstractRobustConnection]:
    """The test's own connection, to declare queues and read messages."""
    connection = await aio_pika.connect_robust(ADDRESS, password=PASSWORD)
    yield connection
    await connection.close()


@pytest.fixture
async def queue(broker: AbstractRobustConnection) -> AsyncIterator[AbstractQueue]:
    channel = await broker.channel()
    declared = await channel.declare_queue(f"splice-test-{secrets.token_hex(6)}", durable=True)
    yield declared
    await declared.delete(if_unused=False, if_empty=False)
    await channel.close()


@pytest.fixture
async def open_amqp() -> AsyncIterator[Opener]:
    """Opens AMQP connections as a server does (``KINDS["amqp"].open``) and closes them at the end."""
    opened: list[Connection] = []

    def open_(**options: Any) -> Connection:
        spec = AmqpSpec.model_validate({"name": "mq", "kind": "amqp", "address": ADDRESS, **options})
        connection = KINDS["amqp"].open(spec, {"password": PASSWORD}, "server1")
        opened.append(connection)
        return connection

    yield open_
    for connection in opened:
        await connection.aclose()


async def _take(queue: AbstractQueue, count: int = 1) -> list[AbstractIncomingMessage]:
    """The next ``count`` messages of ``queue`` (waits up to 10 s for them)."""
    taken: list[AbstractIncomingMessage] = []
    async with asyncio.timeout(10), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            taken.append(message)
            if len(taken) == count:
                break
    return taken


async def test_publish_waits_for_the_confirm_and_the_message_arrives(
    open_amqp: Opener, queue: AbstractQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    caplog.handler.addFilter(CidFilter())
    publisher = open_amqp().client(False)
    token = current_cid.set("cid-amqp-1")
    try:
        message_id = await publisher.publish({"order": 7}, routing_key=queue.name, headers={"x-tenant": "acme"})
        await publisher.publish("hé", routing_key=queue.name, message_id="m-2", priority=3)
        await publisher.publish(b"\x00\x01", routing_key=queue.name, content_type="application/octet-stream")
    finally:
        current_cid.reset(token)
    first, second, third = await _take(queue, 3)
    assert json.loads(first.body) == {"order": 7}
    assert first.content_type == "application/json"
    assert first.message_id == message_id
    assert first.headers == {"x-tenant": "acme", "x-splice-cid": "cid-amqp-1"}
    assert first.correlation_id == "cid-amqp-1"
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (second.body.decode(), second.content_type, second.message_id, second.priority) == (
        "hé",
        "text/plain",
        "m-2",
        3,
    )
    assert (third.body, third.content_type) == (b"\x00\x01", "application/octet-stream")
    lines = [(r.cid, r.getMessage()) for r in caplog.records if r.name == "splice.outgoing"]  # type: ignore[attr-defined]
    assert len(lines) == 3
    assert all(cid == "cid-amqp-1" for cid, _ in lines)
    assert lines[0][1].startswith(f"amqp mq: publish to (default exchange) with routing key '{queue.name}' in ")


async def test_a_blocking_publish_from_a_worker_thread(open_amqp: Opener, queue: AbstractQueue) -> None:
    connection = open_amqp(routing_key=queue.name, persistent=False)

    def handle() -> str:
        """What a plain ``def handle`` does with ``self.out.amqp["mq"]`` in its worker thread."""
        return str(connection.client(True).publish([1, 2, 3]))

    token = current_cid.set("cid-amqp-blocking")
    try:
        message_id = await anyio.to_thread.run_sync(handle)
    finally:
        current_cid.reset(token)
    (message,) = await _take(queue)
    assert (json.loads(message.body), message.message_id) == ([1, 2, 3], message_id)
    assert message.headers["x-splice-cid"] == "cid-amqp-blocking"
    assert message.delivery_mode == aio_pika.DeliveryMode.NOT_PERSISTENT


async def test_declare_a_topic_exchange(
    open_amqp: Opener, broker: AbstractRobustConnection, queue: AbstractQueue
) -> None:
    exchange = f"splice-test-{secrets.token_hex(6)}"
    publisher = open_amqp(exchange=exchange, exchange_type="topic", declare=True).client(False)
    channel = await broker.channel()
    try:
        with pytest.raises(Unroutable):  # declared by the first publish, bound to nothing yet
            await publisher.publish({"n": 0}, routing_key="orders.eu.created")
        await queue.bind(exchange, "orders.*.created")
        await publisher.publish({"n": 1}, routing_key="orders.eu.created")
        (message,) = await _take(queue)
        assert (json.loads(message.body), message.routing_key, message.exchange) == (
            {"n": 1},
            "orders.eu.created",
            exchange,
        )
        declared = await channel.get_exchange(exchange)  # passive: it exists
        assert declared.name == exchange
    finally:
        await channel.exchange_delete(exchange)
        await channel.close()


async def test_an_unroutable_message_raises(open_amqp: Opener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    publisher = open_amqp().client(False)
    key = f"splice-test-nobody-{secrets.token_hex(4)}"
    with pytest.raises(Unroutable, match=f"no queue is bound for routing key '{key}' on the default exchange"):
        await publisher.publish({"lost": True}, routing_key=key)
    assert f"amqp mq: publish to (default exchange) with routing key '{key}' failed after" in caplog.text
    assert isinstance(await publisher.publish({"dropped": True}, routing_key=key, mandatory=False), str)


async def test_an_exchange_that_does_not_exist(open_amqp: Opener, queue: AbstractQueue) -> None:
    connection = open_amqp(exchange=f"splice-test-missing-{secrets.token_hex(4)}")
    with pytest.raises(
        NoExchange, match=re.escape("does not exist at amqp://guest@127.0.0.1:5672/: create it, or set declare")
    ):
        await connection.client(False).publish({"x": 1}, routing_key=queue.name)
    assert (await connection.ping()).startswith("RabbitMQ ")  # the connection itself still works


async def test_a_thousand_publishes_all_arrive(open_amqp: Opener, queue: AbstractQueue) -> None:
    publisher = open_amqp(routing_key=queue.name).client(False)
    for n in range(1000):
        await publisher.publish({"n": n})
    messages = await _take(queue, 1000)
    assert [json.loads(m.body)["n"] for m in messages] == list(range(1000))


async def test_ping_and_logs_never_show_the_password(
    open_amqp: Opener, queue: AbstractQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = open_amqp(routing_key=queue.name)
    answer = await connection.ping()
    assert answer.startswith("RabbitMQ 3."), answer
    assert answer.endswith(" at amqp://guest@127.0.0.1:5672/")
    await connection.client(False).publish("x")
    await _take(queue)
    shown = [answer, caplog.text, repr(connection), repr(connection.client(False)), repr(connection.client(True))]
    assert all(":guest@" not in text for text in shown)


async def test_a_channel_for_consumers(open_amqp: Opener, queue: AbstractQueue) -> None:
    connection = open_amqp(routing_key=queue.name)
    channel = await connection.channel(prefetch=2)  # type: ignore[attr-defined]
    try:
        for n in range(3):
            await connection.client(False).publish({"n": n})
        mine = await channel.get_queue(queue.name)
        got = await mine.get(timeout=5)
        assert got is not None
        assert json.loads(got.body) == {"n": 0}
        await got.ack()
    finally:
        await channel.close()


async def test_a_closed_connection_refuses_to_publish(open_amqp: Opener, queue: AbstractQueue) -> None:
    connection = open_amqp(routing_key=queue.name)
    await connection.client(False).publish("one")
    await connection.aclose()
    with pytest.raises(Exception, match="AMQP connection 'mq' was closed"):
        await connection.client(False).publish("two")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"raw", (b"raw", None)),
        ("text", (b"text", "text/plain")),
        ({"a": [1, None]}, (b'{"a":[1,null]}', "application/json")),
        ([1, "x"], (b'[1,"x"]', "application/json")),
    ],
)
def test_encode(body: Any, expected: tuple[bytes, str | None]) -> None:
    assert encode(body) == expected


def test_encode_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="publish sends bytes, a str or a JSON value"):
        encode({"when": object()})


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:5672/", "is an amqp:// or amqps:// URL"),
        ("amqp://guest:guest@127.0.0.1:5672/", "must not hold a password"),
    ],
)
def test_a_bad_address_is_refused(address: str, message: str) -> None:
    with pytest.raises(ValidationError, match="address") as refused:
        AmqpSpec.model_validate({"name": "mq", "kind": "amqp", "address": address})
    assert message in str(refused.value)
