"""``self.cache`` from services: memory caches in ``splice.testing``'s harness, and Redis-backed caches against the
local Redis (through the same connection code a server uses), from ``def handle`` and ``async def handle``."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from splice.server import Service
from splice.server.core.cache import CacheError, UnknownCache
from splice.testing import ServiceHarness

REDIS = "redis://127.0.0.1:6379/0"


class Remember(Service):
    """Sync: counts calls, remembers the last payload, and reads it back."""

    name = "cache.remember"

    def handle(self) -> None:
        cache = self.cache[self.request.payload.get("cache", "default")]
        calls = cache.incr("calls")
        cache.set("last", self.request.payload, expiry=60)
        made = cache.get_or_set("made-once", lambda: {"at": calls})
        self.response.payload = {"calls": calls, "last": cache.get("last"), "made": made, "keys": cache.keys()}


class RememberAsync(Service):
    name = "cache.remember-async"

    async def handle(self) -> None:
        cache = self.cache[self.request.payload.get("cache", "default")]
        calls = await cache.aincr("calls")
        await cache.aset("last", self.request.payload, expiry=60)

        async def make() -> dict[str, int]:
            return {"at": calls}

        made = await cache.aget_or_set("made-once", make)
        items = dict(await cache.aitems())
        self.response.payload = {"calls": calls, "last": await cache.aget("last"), "made": made, "items": items}


class Forget(Service):
    name = "cache.forget"

    async def handle(self) -> None:
        cache = self.cache[self.request.payload["cache"]]
        self.response.payload = {
            "deleted": await cache.adelete("last"),
            "exists": await cache.aexists("last"),
            "by_prefix": await cache.adelete_prefix("made"),
            "cleared": await cache.aclear(),
        }


class Blocking(Service):
    """A blocking call on the event loop: refused for a Redis cache."""

    name = "cache.blocking-on-the-loop"

    async def handle(self) -> None:
        self.response.payload = self.cache[self.request.payload["cache"]].get("k")


class Unknown(Service):
    name = "cache.unknown"

    def handle(self) -> None:
        self.cache["defualt"].get("k")


@pytest.fixture
def services() -> Iterator[ServiceHarness]:
    harness = ServiceHarness()
    harness.add(Remember, RememberAsync, Forget, Blocking, Unknown)
    yield harness
    harness.close()


def test_a_sync_service_uses_the_default_memory_cache(services: ServiceHarness) -> None:
    first = services.invoke("cache.remember", {"n": 1})
    second = services.invoke("cache.remember", {"n": 2})
    assert first == {"calls": 1, "last": {"n": 1}, "made": {"at": 1}, "keys": ["calls", "last", "made-once"]}
    assert second["calls"] == 2
    assert second["made"] == {"at": 1}
    assert services.caches["default"].get("last") == {"n": 2}


def test_an_async_service_and_a_defined_cache(services: ServiceHarness) -> None:
    services.define_cache("small", max_entries=2)
    answer = services.invoke("cache.remember-async", {"cache": "small"})
    assert answer["calls"] == 1
    assert len(answer["items"]) == 2  # three keys set, two kept
    assert services.invoke("cache.forget", {"cache": "small"})["exists"] is False


def test_an_unknown_cache_names_the_known_ones(services: ServiceHarness) -> None:
    with pytest.raises(Exception, match=r"no cache named 'defualt' \(known caches: default\); did you mean 'default'"):
        services.invoke("cache.unknown")
    with pytest.raises(UnknownCache):
        services.caches["nope"]


@pytest.fixture
def redis_cache(services: ServiceHarness) -> Iterator[str]:
    """A Redis-backed cache of this test's own name on the local Redis; its keys are removed at the end."""
    name = f"t{secrets.token_hex(4)}"
    services.connect("shared", kind="redis", address=REDIS)
    services.define_cache(name, backend="redis", connection="shared", expiry=120)
    yield name
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"splice:cache:{name}:*"):
        client.delete(key)
    client.close()


def test_a_redis_cache_from_sync_and_async_services(services: ServiceHarness, redis_cache: str) -> None:
    import redis

    first = services.invoke("cache.remember", {"cache": redis_cache})
    second = services.invoke("cache.remember-async", {"cache": redis_cache})
    assert first["calls"] == 1
    assert second["calls"] == 2
    assert second["made"] == {"at": 1}
    assert second["last"] == {"cache": redis_cache}
    client = redis.Redis.from_url(REDIS)
    try:
        assert client.get(f"splice:cache:{redis_cache}:calls") == b"2"
        assert 0 < client.pttl(f"splice:cache:{redis_cache}:calls") <= 120_000  # the cache's default expiry
        assert 0 < client.pttl(f"splice:cache:{redis_cache}:last") <= 60_000
    finally:
        client.close()
    gone = services.invoke("cache.forget", {"cache": redis_cache})
    assert gone == {"deleted": True, "exists": False, "by_prefix": 1, "cleared": 1}


def test_a_redis_cache_refuses_to_block_the_event_loop(services: ServiceHarness, redis_cache: str) -> None:
    with pytest.raises(Exception, match=r"await \.aget"):
        services.invoke("cache.blocking-on-the-loop", {"cache": redis_cache})


async def test_redis_cache_values_keys_and_errors(services: ServiceHarness, redis_cache: str) -> None:
    cache: Any = services.caches[redis_cache]
    await cache.aset("b", b"\x00raw")
    await cache.aset("j", {"a": [1, "x"]})
    await cache.aset("odd*key?[x]", 1)
    assert await cache.aget("b") == b"\x00raw"
    assert await cache.aget("j") == {"a": [1, "x"]}
    assert await cache.akeys("odd*") == ["odd*key?[x]"]  # glob characters taken literally
    assert await cache.akeys("o") == ["odd*key?[x]"]
    with pytest.raises(CacheError, match="does not hold an integer"):
        await cache.aincr("j")
    assert await cache.aentry("j") == ({"a": [1, "x"]}, pytest.approx(120, abs=5))
    sync = await asyncio.to_thread(lambda: (cache.get("j"), cache.keys(), cache.items("b"), cache.incr("n", 5)))
    assert sync == ({"a": [1, "x"]}, ["b", "j", "odd*key?[x]"], [("b", b"\x00raw")], 5)
    await services.aclose()


async def test_an_unreachable_redis_is_a_cache_error() -> None:
    services = ServiceHarness()
    services.connect("down", kind="redis", address="redis://127.0.0.1:1/0", timeout=1)
    services.define_cache("far", backend="redis", connection="down")
    with pytest.raises(CacheError, match="cache 'far': Redis connection 'down' failed"):
        await services.caches["far"].aget("k")
    await services.aclose()
