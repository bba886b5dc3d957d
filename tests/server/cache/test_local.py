"""Memory caches: the ``Cache`` API, the events they send, and two servers' caches applying each other's events
in any order. Each "server" here is a real ``MemoryCache`` whose events are handed to the other by the test."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

from splice.server.cache import CacheSpec
from splice.server.cache.local import MemoryCache
from splice.server.cache.values import Clock, ValueTooLarge
from splice.server.core.cache import CacheError


def make(server: str = "s1", **spec: Any) -> tuple[MemoryCache, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    return MemoryCache(CacheSpec(name="c", **spec), Clock(server), sent.append), sent


def test_values_are_copies_json_or_bytes() -> None:
    cache, _ = make()
    value = {"a": [1, 2], "b": None}
    cache.set("k", value)
    value["a"].append(3)
    got = cache.get("k")
    assert got == {"a": [1, 2], "b": None}
    got["a"].append(4)
    assert cache.get("k") == {"a": [1, 2], "b": None}
    cache.set("raw", b"\x00\xff")
    assert cache.get("raw") == b"\x00\xff"
    assert cache.get("missing", "dflt") == "dflt"
    assert cache.exists("k")
    assert not cache.exists("missing")


def test_refusals_name_the_cache_and_key() -> None:
    cache, sent = make(max_value=10)
    with pytest.raises(CacheError, match=r"'c'.*'k'.*cannot be stored"):
        cache.set("k", object())
    with pytest.raises(ValueTooLarge, match="more than max_value 10"):
        cache.set("k", "x" * 20)
    with pytest.raises(CacheError, match="non-empty string"):
        cache.set("", 1)
    with pytest.raises(CacheError, match="expiry"):
        cache.set("k", 1, expiry=-1)
    assert sent == []


def test_expiry_per_entry_and_the_cache_default() -> None:
    cache, sent = make(expiry=60)
    cache.set("default", 1)
    cache.set("own", 1, expiry=0.05)
    assert sent[0]["expires"] == pytest.approx(time.time() + 60, abs=2)
    deadline = time.monotonic() + 5
    while cache.get("own") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert cache.get("default") == 1


def test_incr_decr_and_get_or_set() -> None:
    cache, sent = make()
    assert cache.incr("n") == 1
    assert cache.incr("n", 5) == 6
    assert cache.decr("n", 2) == 4
    assert cache.get("n") == 4
    assert sent[-1]["op"] == "set"
    assert sent[-1]["value"] == "4"
    cache.set("s", "text")
    with pytest.raises(CacheError, match="not an integer"):
        cache.incr("s")
    calls = []
    assert cache.get_or_set("g", lambda: calls.append(1) or "made") == "made"
    assert cache.get_or_set("g", lambda: calls.append(1) or "again") == "made"
    assert calls == [1]
    assert cache.get_or_set("plain", 7) == 7


async def test_async_twins() -> None:
    cache, _ = make()
    await cache.aset("k", [1])
    assert await cache.aget("k") == [1]
    assert await cache.aexists("k")
    assert await cache.aincr("n", 2) == 2
    assert await cache.adecr("n") == 1

    async def fetch() -> str:
        await asyncio.sleep(0)
        return "fetched"

    assert await cache.aget_or_set("a", fetch) == "fetched"
    assert await cache.akeys() == ["a", "k", "n"]
    assert await cache.aitems("k") == [("k", [1])]
    assert await cache.adelete("k")
    assert await cache.adelete_prefix("") == 2
    await cache.aset("x", 1)
    assert await cache.aclear() == 1


def test_keys_items_and_prefix_deletion() -> None:
    cache, sent = make()
    for key in ("user:2", "user:1", "order:1"):
        cache.set(key, key)
    assert cache.keys() == ["order:1", "user:1", "user:2"]
    assert cache.keys("user:") == ["user:1", "user:2"]
    assert cache.items("order") == [("order:1", "order:1")]
    assert cache.delete_prefix("user:") == 2
    assert sent[-1] == {"cache": "c", "op": "delete_prefix", "version": sent[-1]["version"], "prefix": "user:"}
    assert cache.clear() == 1
    assert cache.keys() == []


def test_delete_is_sent_even_when_this_server_did_not_hold_the_key() -> None:
    cache, sent = make()
    assert cache.delete("never") is False
    assert sent[-1]["op"] == "delete"
    assert sent[-1]["key"] == "never"


def test_another_servers_changes_apply() -> None:
    one, sent = make("s1")
    two, _ = make("s2")
    one.set("k", {"v": 1})
    one.set("b", b"\x01\x02")
    one.incr("n", 3)
    for event in sent:
        two.apply(event)
    assert two.get("k") == {"v": 1}
    assert two.get("b") == b"\x01\x02"
    assert two.get("n") == 3
    one.delete("k")
    two.apply(sent[-1])
    assert two.get("k") is None


def test_an_event_already_expired_is_not_applied() -> None:
    one, sent = make("s1")
    two, _ = make("s2")
    one.set("k", 1, expiry=0.01)
    time.sleep(0.02)
    two.apply(sent[-1])
    assert two.keys() == []


def test_a_change_made_after_seeing_another_is_ordered_after_it_even_with_a_clock_behind() -> None:
    ahead, sent_ahead = make("s1")
    behind, sent_behind = make("s2")
    ahead.clock._last = time.time_ns() // 1000 + 10_000_000  # 10 s ahead
    ahead.set("k", "first")
    behind.apply(sent_ahead[-1])
    behind.set("k", "second")
    ahead.apply(sent_behind[-1])
    assert ahead.get("k") == behind.get("k") == "second"


def test_servers_agree_whatever_order_the_events_arrive_in() -> None:
    rng = random.Random(7)
    servers = [make(f"s{n}") for n in range(3)]
    keys = [f"k{n}" for n in range(5)]
    for step in range(300):
        cache, _ = rng.choice(servers)
        key = rng.choice(keys)
        action = rng.random()
        if action < 0.5:
            cache.set(key, step)
        elif action < 0.7:
            cache.delete(key)
        elif action < 0.8:
            cache.delete_prefix("k1")
        elif action < 0.85:
            cache.clear()
        else:
            cache.incr(f"n{step % 2}")
    for cache, _ in servers:
        for other, sent in servers:
            if other is not cache:
                for event in rng.sample(sent, len(sent)):  # every event, in a shuffled order
                    cache.apply(event)
    contents = [cache.items() for cache, _ in servers]
    assert contents[0] == contents[1] == contents[2]


def test_limits_change_and_entries_that_fit_stay() -> None:
    cache, _ = make(max_entries=10)
    for n in range(10):
        cache.set(f"k{n}", n)
    cache.reconfigure(CacheSpec(name="c", max_entries=3))
    assert cache.keys() == ["k7", "k8", "k9"]
    assert cache.stats()["evictions"] == 7


def test_thread_safety_smoke() -> None:
    import threading

    cache, sent = make(max_entries=200)
    errors: list[BaseException] = []
    counter = itertools.count()

    def work() -> None:
        try:
            for _ in range(1000):
                n = next(counter)
                cache.set(f"k{n % 300}", n)
                cache.get(f"k{(n * 7) % 300}")
                cache.incr("hits")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.get("hits") == 6000
    assert len(cache.keys()) <= 200
    assert len(sent) == 12000
