"""Redis connections against the real Redis of this machine (127.0.0.1:6379), with random keys deleted after."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
import pytest
import redis
import redis.asyncio
from pydantic import ValidationError

from splice.server.connections import KINDS, Connection
from splice.server.connections.redis import RedisSpec
from splice.server.core.context import CidFilter, current_cid

ADDRESS = os.environ.get("SPLICE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "s3cr3t-Rd7"

Opener = Callable[..., Connection]


@pytest.fixture
async def open_redis() -> AsyncIterator[Opener]:
    """Opens Redis connections as a server does (``KINDS["redis"].open``) and closes them at the end."""
    opened: list[Connection] = []

    def open_(password: str | None = None, **options: Any) -> Connection:
        spec = RedisSpec.model_validate({"name": "cache", "kind": "redis", "address": ADDRESS, **options})
        connection = KINDS["redis"].open(spec, {"password": password} if password else {}, "server1")
        opened.append(connection)
        return connection

    yield open_
    for connection in opened:
        await connection.aclose()


@pytest.fixture
async def key() -> AsyncIterator[str]:
    name = f"splice:test:{secrets.token_hex(6)}"
    yield name
    cleaner = redis.asyncio.Redis.from_url(ADDRESS)
    await cleaner.delete(name)
    await cleaner.aclose()


def _redis_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "splice.outgoing" and r.getMessage().startswith("redis cache: ")]


async def test_async_and_blocking_clients(open_redis: Opener, key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    caplog.handler.addFilter(CidFilter())
    connection = open_redis(max_connections=3, timeout=2.0)
    client = connection.client(False)
    assert isinstance(client, redis.asyncio.Redis)
    token = current_cid.set("cid-redis")
    try:
        await client.set(key, "åsync")
        assert await client.get(key) == "åsync".encode()  # bytes: decode_responses is off

        def handle() -> Any:
            """What a plain ``def handle`` does with ``self.out.redis["cache"]`` in its worker thread."""
            blocking = connection.client(True)
            assert isinstance(blocking, redis.Redis)
            blocking.append(key, b"\x00")
            return blocking.get(key)

        assert await anyio.to_thread.run_sync(handle) == "åsync".encode() + b"\x00"
    finally:
        current_cid.reset(token)
    assert connection.client(True) is connection.client(True)
    assert client.connection_pool.max_connections == connection.client(True).connection_pool.max_connections == 3
    logged = [(r.cid, r.getMessage().split(" in ")[0]) for r in _redis_lines(caplog)]  # type: ignore[attr-defined]
    assert logged == [
        ("cid-redis", "redis cache: SET"),
        ("cid-redis", "redis cache: GET"),
        ("cid-redis", "redis cache: APPEND"),
        ("cid-redis", "redis cache: GET"),
    ]


async def test_a_burst_waits_for_a_free_connection(open_redis: Opener, key: str) -> None:
    client = open_redis(max_connections=2).client(False)
    await client.set(key, b"0")
    results = await asyncio.gather(*(client.incr(key) for _ in range(50)))  # 50 calls share 2 connections
    assert sorted(results) == list(range(1, 51))


async def test_ping(open_redis: Opener) -> None:
    answer = await open_redis().ping()
    assert answer.startswith("PONG, Redis 7."), answer


async def test_a_failing_command_is_logged_and_the_password_never_shows(
    open_redis: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """This Redis knows no user ``splice-nobody``: AUTH fails, and neither the error nor any log line shows it."""
    caplog.set_level(logging.DEBUG)
    connection = open_redis(PASSWORD, username="splice-nobody")
    with pytest.raises(redis.exceptions.RedisError) as failed:
        await connection.ping()
    blocking = connection.client(True)
    with pytest.raises(redis.exceptions.RedisError) as failed_blocking:
        await anyio.to_thread.run_sync(blocking.ping)
    assert [r.levelno for r in _redis_lines(caplog)] == [logging.WARNING, logging.WARNING]
    assert "redis cache: PING failed after" in caplog.text
    shown = [str(failed.value), str(failed_blocking.value), caplog.text, repr(connection), repr(blocking)]
    assert all(PASSWORD not in text for text in shown)


async def test_a_closed_connection_gives_no_client(open_redis: Opener) -> None:
    connection = open_redis()
    client = connection.client(False)
    await client.ping()
    await connection.aclose()
    with pytest.raises(RuntimeError, match="Redis connection 'cache' was closed"):
        connection.client(False)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:6379", "is a redis:// or rediss:// URL"),
        ("redis://:pw@127.0.0.1:6379/0", "must not hold a password"),
        ("redis://127.0.0.1:6379/0?password=pw", "holds no password"),
    ],
)
def test_a_bad_address_is_refused(address: str, message: str) -> None:
    with pytest.raises(ValidationError, match="address") as refused:
        RedisSpec.model_validate({"name": "cache", "kind": "redis", "address": address})
    assert message in str(refused.value)
