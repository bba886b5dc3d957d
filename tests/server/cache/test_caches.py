"""A server's caches by name: the built-in default, definitions coming and going, unknown names."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from splice.server.cache import CacheSpec, MemoryCache, RedisCache, ServerCaches
from splice.server.cache.caches import wanted
from splice.server.core.cache import UnknownCache


@dataclass
class Definitions:
    caches: dict[str, CacheSpec] = field(default_factory=dict)


def test_default_is_always_there_and_may_be_declared_with_other_limits() -> None:
    assert wanted({}) == {"default": CacheSpec(name="default")}
    declared = CacheSpec(name="default", max_entries=10)
    assert wanted({"default": declared}) == {"default": declared}


async def test_reload_makes_keeps_changes_and_removes_caches() -> None:
    definitions = Definitions({"rates": CacheSpec(name="rates", max_entries=10)})
    caches = ServerCaches(definitions, None, None, "s1")
    assert list(caches.names()) == ["default", "rates"]
    rates = caches.get("rates")
    assert isinstance(rates, MemoryCache)
    for n in range(10):
        rates.set(f"k{n}", n)
    default = caches.get("default")

    definitions.caches = {"rates": CacheSpec(name="rates", max_entries=3), "new": CacheSpec(name="new")}
    await caches.reload()
    assert caches.get("rates") is rates  # the same cache, limits changed, what fits kept
    assert rates.keys() == ["k7", "k8", "k9"]
    assert caches.get("default") is default
    assert list(caches.names()) == ["default", "new", "rates"]

    definitions.caches = {"rates": CacheSpec(name="rates", backend="redis", connection="r")}
    await caches.reload()
    assert isinstance(caches.get("rates"), RedisCache)
    assert list(caches.names()) == ["default", "rates"]
    with pytest.raises(UnknownCache, match=r"no cache named 'new' \(known caches: default, rates\)"):
        caches["new"]


def test_an_unknown_name_suggests_the_closest() -> None:
    caches = ServerCaches(Definitions({"sessions": CacheSpec(name="sessions")}), None, None, "s1")
    with pytest.raises(UnknownCache, match="did you mean 'sessions'"):
        caches["session"]
