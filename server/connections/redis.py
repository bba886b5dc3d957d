"""Redis connections (redis-py): a pooled client per connection and server.

``self.out.redis[name]`` is a ``redis.asyncio.Redis`` in ``async def handle`` and a ``redis.Redis`` in
``def handle``; each has its own pool of up to ``max_connections`` connections, made on first use. The pool
is a blocking one: a burst of calls waits up to ``timeout`` seconds for a free connection instead of failing
at once with "Too many connections". ``timeout`` also bounds each command (``socket_timeout``).

Replies are bytes (``decode_responses=False``): a value may be binary (pickles, images, compressed JSON),
and a service decodes what it knows is text. The password comes from the connection's ``password`` secret,
the ACL user from ``username`` (or the address).

Each command a service sends is logged with its duration (its name only: arguments may be data or secrets,
as ``AUTH``'s). redis-py has no hook for this, so the clients are subclasses whose ``execute_command`` times
the call: a ``perf_counter`` and one log record per command, next to a network round trip. Commands queued
in a pipeline or sent on a pub/sub connection are not logged one by one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, field_validator

from ..core.validation import Whole
from ._lazy import ClientPair
from .registry import Connection, Kind, OutgoingSpec, log_call, register


class RedisSpec(OutgoingSpec):
    """``self.out.redis[name]``: ``redis.Redis`` in ``def handle``, ``redis.asyncio.Redis`` in ``async def``."""

    SCHEMES: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")

    kind: Literal["redis"]
    max_connections: Whole = Field(default=20, ge=1, le=1000, description="pooled connections per server")
    timeout: float = Field(default=5.0, gt=0, le=600, description="seconds for one command")

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"a Redis connection's address is a redis:// or rediss:// URL, got {value!r}")
        if "password" in parse_qs(urlsplit(value).query):  # OutgoingSpec refuses one before the host
            raise ValueError(
                "a Redis connection's address holds no password: give it as the connection's password (secret)"
            )
        return value


@functools.cache
def _clients() -> tuple[type[Any], type[Any]]:
    """The logging subclasses of ``redis.Redis`` and ``redis.asyncio.Redis`` (made when first needed)."""
    import redis
    import redis.asyncio

    class LoggedRedis(redis.Redis):
        splice_name = "?"

        def execute_command(self, *args: Any, **options: Any) -> Any:
            started = time.perf_counter()
            try:
                result = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except Exception as exc:
                log_call("redis", self.splice_name, _command(args), started, exc)
                raise
            log_call("redis", self.splice_name, _command(args), started)
            return result

    class LoggedAsyncRedis(redis.asyncio.Redis):
        splice_name = "?"

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except Exception as exc:
                log_call("redis", self.splice_name, _command(args), started, exc)
                raise
            log_call("redis", self.splice_name, _command(args), started)
            return result

    return LoggedRedis, LoggedAsyncRedis


def _command(args: tuple[Any, ...]) -> str:
    name = args[0] if args else "?"
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


class RedisConnection:
    """One Redis connection on one server: a blocking and an async client, each with its own pool."""

    def __init__(self, spec: RedisSpec, secrets: Mapping[str, str], server: str) -> None:
        self.name = spec.name
        self.server = server
        self._spec = spec
        self._options: dict[str, Any] = {
            "max_connections": spec.max_connections,
            "timeout": spec.timeout,  # waiting for a free connection
            "socket_timeout": spec.timeout,
            "socket_connect_timeout": spec.timeout,
            "decode_responses": False,
        }
        # the URL's own user and options win over these in redis-py, so pass only what is set
        if spec.username is not None:
            self._options["username"] = spec.username
        if secrets.get("password") is not None:
            self._options["password"] = secrets["password"]
        self._clients = ClientPair(f"Redis connection '{self.name}'", self._make)

    def client(self, blocking: bool) -> Any:
        """The ``redis.Redis`` (``blocking``) or ``redis.asyncio.Redis``, made once, whichever thread asks first."""
        return self._clients.get(blocking)

    def _make(self, blocking: bool) -> Any:
        import redis
        import redis.asyncio

        pools: Any = redis.BlockingConnectionPool if blocking else redis.asyncio.BlockingConnectionPool
        pool = pools.from_url(self._spec.address, **self._options)
        client = _clients()[0 if blocking else 1](connection_pool=pool)
        client.auto_close_connection_pool = True  # closing the client closes its pool
        client.splice_name = self.name
        return client

    async def ping(self) -> str:
        """``PING`` and ``INFO server`` on the async client: ``PONG, Redis 7.0.15``."""
        client = self.client(False)
        await client.ping()
        info = await client.info("server")
        return f"PONG, Redis {info.get('redis_version', '?')}"

    async def aclose(self) -> None:
        """Close both clients and their pools."""
        await self._clients.aclose(lambda client: client.aclose(), lambda client: client.close())

    def __repr__(self) -> str:
        return f"<RedisConnection {self.name!r} on {self.server}: {self._spec.address}>"


def open_redis(spec: RedisSpec, secrets: Mapping[str, str], server: str) -> Connection:
    return RedisConnection(spec, secrets, server)


register(Kind("redis", RedisSpec, open_redis))

__all__ = ["RedisConnection", "RedisSpec", "open_redis"]
