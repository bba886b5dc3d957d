"""AMQP connections (RabbitMQ through aio-pika): publish with publisher confirms to a declared exchange.

``self.out.amqp[name]`` is a publisher: ``await pub.publish(body, routing_key=...)`` in ``async def handle``,
the same call without ``await`` in ``def handle`` (it runs on the server's event loop, which owns the AMQP
connection, and blocks the worker thread until it is done). ``publish`` returns the message id once the broker
confirmed the message; a message no queue takes raises ``Unroutable`` (``mandatory=False`` lets the broker drop
it), one the broker refuses or does not confirm within ``timeout`` raises ``NotConfirmed``.

The body: a dict, list or other JSON value is sent as JSON (``application/json``), a str as UTF-8
(``text/plain``), bytes as they are. Messages are persistent when ``persistent`` is set, and carry the call's
cid as ``correlation_id`` and in the ``x-splice-cid`` header.

Each connection definition has one robust connection per server (it reconnects and restores its channels and
exchanges by itself), opened on first use, with one publishing channel. AMQP *channels* (consumers that invoke
services) reach the broker through a named connection too: ``await connection.channel(prefetch)`` gives them a
channel of their own on the same robust connection, with that prefetch count.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec, TypeVar

from pydantic import Field, field_validator

from ..core.context import current_cid
from .registry import Connection, Kind, OutgoingSpec, log_call, register

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

P = ParamSpec("P")
R = TypeVar("R")


class AmqpSpec(OutgoingSpec):
    """``self.out.amqp[name].publish(body, routing_key=...)``: returns once the broker confirmed the message.

    AMQP channels (``kind = "amqp"`` channels) consume through these connections too.
    """

    SCHEMES: ClassVar[tuple[str, ...]] = ("amqp", "amqps")

    kind: Literal["amqp"]
    exchange: str = Field(default="", max_length=255, description="where publish sends; '' is the default exchange")
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "direct"
    declare: bool = Field(default=False, description="declare the exchange (durable) when first used")
    routing_key: str = Field(default="", max_length=255, description="used when publish names none")
    persistent: bool = Field(default=True, description="messages survive a broker restart")
    timeout: float = Field(default=10.0, gt=0, le=600, description="seconds to wait for connect and confirms")

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError(f"an AMQP connection's address is an amqp:// or amqps:// URL, got {value!r}")
        return value


class AmqpError(Exception):
    """A message was not published; the message says why."""


class Unroutable(AmqpError):
    """The broker confirmed that no queue takes a mandatory message."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        where = f"exchange {exchange!r}" if exchange else "the default exchange (no queue has that name)"
        super().__init__(f"no queue is bound for routing key {routing_key!r} on {where}")


class NotConfirmed(AmqpError):
    """The broker refused a message (nack) or did not confirm it in time: it may or may not be queued."""


class NoExchange(AmqpError):
    """The connection's exchange does not exist on the broker and ``declare`` is off."""


def encode(body: Any) -> tuple[bytes, str | None]:
    """A message body and its content type: bytes as is, str as UTF-8 text, anything else as JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), None
    if isinstance(body, str):
        return body.encode(), "text/plain"
    try:
        return json.dumps(body, separators=(",", ":")).encode(), "application/json"
    except TypeError as exc:
        raise TypeError(f"publish sends bytes, a str or a JSON value (dict, list, ...); {exc}") from None


class AmqpConnection:
    """One AMQP connection on one server: a robust connection, its publishing channel and exchange."""

    def __init__(self, spec: AmqpSpec, secrets: Mapping[str, str], server: str) -> None:
        from yarl import URL

        self.name = spec.name
        self.server = server
        self._spec = spec
        address = URL(spec.address)
        user = spec.username or address.user
        self.display = str(address.with_user(user))
        """The broker's address with its user, never its password (for pings and messages)."""
        password = secrets.get("password")
        self._url = address.with_user(user).with_password(password) if password is not None else address
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._publisher = Publisher(self)
        self._blocking = BlockingPublisher(self)

    def client(self, blocking: bool) -> Any:
        """The publisher: ``publish`` awaits in ``async def handle``, blocks in ``def handle``."""
        return self._blocking if blocking else self._publisher

    async def _open(self) -> AbstractRobustConnection:
        """The robust connection, connected on first use (call with ``_lock`` held)."""
        import aio_pika

        if self._closed:
            raise AmqpError(f"AMQP connection '{self.name}' was closed (it was replaced or removed)")
        if self._connection is None:
            self._connection = await aio_pika.connect_robust(
                self._url,
                timeout=self._spec.timeout,
                client_properties={"connection_name": f"splice {self.server}: {self.name}"},
            )
        return self._connection

    async def connection(self) -> AbstractRobustConnection:
        """The robust connection, connected if it was not yet."""
        if self._connection is not None and not self._closed:
            return self._connection
        async with self._lock:
            return await self._open()

    async def channel(self, prefetch: int) -> AbstractChannel:
        """A new channel on this connection that delivers at most ``prefetch`` unacknowledged messages (consumers)."""
        channel = await (await self.connection()).channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def _ready(self) -> AbstractExchange:
        if self._exchange is not None and not self._closed:
            return self._exchange
        async with self._lock:
            if self._exchange is None:
                connection = await self._open()
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                try:
                    self._exchange = await self._declare(channel)
                except BaseException:
                    if not channel.is_closed:
                        await channel.close()
                    raise
            return self._exchange

    async def _declare(self, channel: AbstractChannel) -> AbstractExchange:
        import aio_pika.exceptions

        spec = self._spec
        if not spec.exchange:
            return channel.default_exchange
        if spec.declare:
            return await channel.declare_exchange(spec.exchange, spec.exchange_type, durable=True, timeout=spec.timeout)
        try:
            return await channel.get_exchange(spec.exchange, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise NoExchange(
                f"exchange {spec.exchange!r} does not exist at {self.display}: create it, or set declare = true"
                f" on outgoing connection '{self.name}'"
            ) from None

    async def publish(
        self,
        body: Any,
        routing_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        message_id: str | None = None,
        priority: int | None = None,
        expiration: float | timedelta | None = None,
        mandatory: bool = True,
    ) -> str:
        """Send ``body`` to the connection's exchange; returns its message id once the broker confirmed it.

        ``routing_key`` defaults to the connection's; ``expiration`` is in seconds (or a timedelta)."""
        import aio_pika
        import aio_pika.exceptions

        data, default_type = encode(body)
        cid = current_cid.get()
        all_headers = dict(headers or {})
        traced = cid != "-"
        if traced:
            all_headers["x-splice-cid"] = cid
        key = self._spec.routing_key if routing_key is None else routing_key
        message_id = message_id or uuid.uuid4().hex
        message = aio_pika.Message(
            data,
            headers=all_headers,
            content_type=content_type or default_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if self._spec.persistent else None,
            priority=priority,
            correlation_id=cid if traced else None,
            expiration=expiration,
            message_id=message_id,
        )
        exchange_name = self._spec.exchange
        started = time.perf_counter()
        what = f"publish to {exchange_name or '(default exchange)'} with routing key {key!r}"
        try:
            exchange = await self._ready()
            try:
                await exchange.publish(message, key, mandatory=mandatory, timeout=self._spec.timeout)
            except aio_pika.exceptions.PublishError:
                raise Unroutable(exchange_name, key) from None
            except aio_pika.exceptions.DeliveryError as exc:
                raise NotConfirmed(f"the broker refused the message ({exc}): {what}") from None
            except TimeoutError:
                raise NotConfirmed(
                    f"the broker did not confirm the message within {self._spec.timeout} s (it may be queued): {what}"
                ) from None
        except Exception as exc:
            log_call("amqp", self.name, what, started, exc)
            raise
        log_call("amqp", self.name, what, started)
        return message_id

    async def ping(self) -> str:
        """Connect if needed and open and close a channel: ``RabbitMQ 3.12.1 at amqp://guest@127.0.0.1:5672/``."""
        connection = await self.connection()
        channel = await connection.channel(publisher_confirms=False)
        await channel.close()
        transport = connection.transport
        properties: Mapping[str, Any] = transport.connection.server_properties if transport is not None else {}
        product, version = (_text(properties.get(key)) for key in ("product", "version"))
        return f"{product or 'AMQP broker'} {version or '?'} at {self.display}"

    async def aclose(self) -> None:
        """Close the robust connection (and its channels); publishing afterwards raises."""
        async with self._lock:
            self._closed = True
            connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            await connection.close()

    def __repr__(self) -> str:
        return f"<AmqpConnection {self.name!r} on {self.server}: {self.display}>"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


class Publisher:
    """``self.out.amqp[name]`` in ``async def handle``: ``await publish(...)`` is ``AmqpConnection.publish``."""

    __slots__ = ("_connection", "publish")

    def __init__(self, connection: AmqpConnection) -> None:
        self._connection = connection
        self.publish = connection.publish

    def __repr__(self) -> str:
        return f"<AMQP publisher {self._connection.name!r}: {self._connection.display}>"


class BlockingPublisher:
    """``self.out.amqp[name]`` in ``def handle``: ``publish(...)``, with ``AmqpConnection.publish``'s parameters,
    runs on the event loop and blocks the worker thread until the broker confirmed."""

    __slots__ = ("_connection", "publish")

    def __init__(self, connection: AmqpConnection) -> None:
        self._connection = connection
        self.publish = _from_thread(connection.publish)

    def __repr__(self) -> str:
        return f"<AMQP publisher {self._connection.name!r}: {self._connection.display}>"


def _from_thread(call: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """``call`` for a worker thread: it runs on the event loop, and the thread waits for its result."""

    @functools.wraps(call)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> R:
        import anyio.from_thread

        return anyio.from_thread.run(functools.partial(call, *args, **kwargs))

    return blocking


def open_amqp(spec: AmqpSpec, secrets: Mapping[str, str], server: str) -> Connection:
    return AmqpConnection(spec, secrets, server)


register(Kind("amqp", AmqpSpec, open_amqp))

__all__ = [
    "AmqpConnection",
    "AmqpError",
    "AmqpSpec",
    "BlockingPublisher",
    "NoExchange",
    "NotConfirmed",
    "Publisher",
    "Unroutable",
    "encode",
]
