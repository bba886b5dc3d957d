"""The tests' own side of this machine's RabbitMQ (127.0.0.1:5672, guest/guest), shared by the AMQP channel tests
in-process and end to end: the address, a connection that names random queues and deletes them at the end, and
a poll for conditions that come true later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aio_pika.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

ADDRESS = os.environ.get("SPLICE_TEST_AMQP", "amqp://guest@127.0.0.1:5672/")
PASSWORD = "guest"


async def until(check: Callable[[], Awaitable[object] | object], seconds: float = 20.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {check}")
        await asyncio.sleep(0.05)


class Broker:
    """The test's own connection to RabbitMQ: name queues, publish, count, read; ``connected`` deletes the
    queues named here (and their ``.retry`` and ``.dead`` queues) at the end."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.queues: list[str] = []

    def queue(self) -> str:
        """A new random queue name, deleted at the end with its ``.retry`` and ``.dead`` queues."""
        name = f"splice-test-{secrets.token_hex(6)}"
        self.queues += [name, f"{name}.retry", f"{name}.dead"]
        return name

    async def publish(self, queue: str, body: bytes, **properties: Any) -> None:
        await self.channel.default_exchange.publish(aio_pika.Message(body, **properties), routing_key=queue)

    async def counts(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of ``queue``, asked on a channel of its own (a failed check closes it)."""
        asking = await self.connection.channel()
        try:
            result = (await asking.declare_queue(queue, passive=True)).declaration_result
            return result.message_count or 0, result.consumer_count or 0
        finally:
            await asking.close()

    async def consumers(self, queue: str, expected: int) -> bool:
        """Whether ``queue`` has ``expected`` consumers (False while no server declared it yet)."""
        try:
            return (await self.counts(queue))[1] == expected
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False

    async def take(self, queue: str) -> AbstractIncomingMessage:
        """The next message of ``queue`` (acknowledged), waiting for it up to 20 s."""
        declared = await self.channel.declare_queue(queue, durable=True)

        async def one() -> AbstractIncomingMessage | None:
            return await declared.get(fail=False, no_ack=True)

        message: AbstractIncomingMessage = await until(one)
        return message


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[Broker]:
    """A ``Broker`` on a connection of its own, closed at the end after deleting the queues it named."""
    connection = await aio_pika.connect_robust(ADDRESS, password=PASSWORD)
    made = Broker(connection, await connection.channel())
    try:
        yield made
    finally:
        for queue in made.queues:
            await made.channel.queue_delete(queue)
        await connection.close()
