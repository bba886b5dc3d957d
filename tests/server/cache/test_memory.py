"""The memory store of a cache: LRU eviction by entries and by bytes, expiry, versions and tombstones, threads."""

from __future__ import annotations

import threading
import time

import pytest

from splice.server.cache.memory import OVERHEAD, Entry, MemoryStore, entry_size, int_value
from splice.server.core.cache import CacheError


def entry(data: bytes = b"1", version: int = 1, server: str = "s1", expires: float | None = None) -> Entry:
    return Entry(data, False, expires, (version, server))


def test_the_least_recently_used_go_past_max_entries() -> None:
    store = MemoryStore(max_entries=3, max_bytes=10**9)
    for n, key in enumerate("abc", 1):
        store.put(key, entry(version=n))
    assert store.get("a") is not None  # a is now the most recently used
    store.put("d", entry(version=4))
    assert [k for k, _ in store.items()] == ["a", "c", "d"]
    assert store.evictions == 1
    assert len(store) == 3


def test_the_least_recently_used_go_past_max_bytes() -> None:
    value = b"x" * 100
    one = entry_size("k0", value)
    store = MemoryStore(max_entries=1000, max_bytes=one * 3)
    for n in range(5):
        store.put(f"k{n}", entry(value, version=n + 1))
    assert [k for k, _ in store.items()] == ["k2", "k3", "k4"]
    assert store.bytes == 3 * one <= store.max_bytes
    assert store.evictions == 2


def test_bytes_count_key_value_and_overhead_and_follow_replacements() -> None:
    store = MemoryStore(100, 10**6)
    store.put("key", entry(b"12345", version=1))
    assert store.bytes == 3 + 5 + OVERHEAD
    store.put("key", entry(b"1", version=2))
    assert store.bytes == 3 + 1 + OVERHEAD
    store.remove("key", (3, "s1"))
    assert store.bytes == 0


def test_resize_keeps_what_fits() -> None:
    store = MemoryStore(10, 10**6)
    for n in range(10):
        store.put(f"k{n}", entry(version=n + 1))
    store.resize(4, 10**6)
    assert [k for k, _ in store.items()] == ["k6", "k7", "k8", "k9"]


def test_an_expired_entry_is_never_served_and_goes_when_looked_at_or_swept() -> None:
    store = MemoryStore(100, 10**6)
    store.put("old", entry(version=1, expires=time.time() - 1))
    store.put("later", entry(version=2, expires=time.time() - 1))
    store.put("fresh", entry(version=3, expires=time.time() + 60))
    assert store.get("old") is None
    assert [k for k, _ in store.items()] == ["fresh"]
    assert len(store) == 2  # "later" still takes room until swept
    assert store.sweep() == 1
    assert len(store) == 1
    assert store.misses == 1


def test_a_newer_version_wins_whatever_the_order() -> None:
    store = MemoryStore(100, 10**6)
    assert store.put("k", entry(b"2", version=2))
    assert not store.put("k", entry(b"1", version=1))  # arrived late
    got = store.get("k")
    assert got is not None
    assert got.data == b"2"
    assert not store.put("k", entry(b"x", version=2, server="s0"))  # same time, lower server name
    assert store.put("k", entry(b"y", version=2, server="s2"))


def test_a_deletion_is_not_undone_by_an_older_set_that_arrives_late() -> None:
    store = MemoryStore(100, 10**6)
    store.put("k", entry(version=1))
    assert store.remove("k", (3, "s2"))
    assert not store.put("k", entry(b"stale", version=2))
    assert store.get("k") is None
    assert store.put("k", entry(b"new", version=4))


def test_a_deletion_that_arrives_before_the_set_it_follows() -> None:
    store = MemoryStore(100, 10**6)
    assert not store.remove("k", (5, "s1"))
    assert not store.put("k", entry(version=4))
    assert store.get("k") is None


def test_an_older_deletion_leaves_a_newer_value() -> None:
    store = MemoryStore(100, 10**6)
    store.put("k", entry(b"new", version=5))
    assert not store.remove("k", (4, "s1"))
    assert store.get("k") is not None


def test_prefix_deletion_and_clear_hold_against_older_sets() -> None:
    store = MemoryStore(100, 10**6)
    for n, key in enumerate(["user:1", "user:2", "order:1"], 1):
        store.put(key, entry(version=n))
    assert store.remove_prefix("user:", (10, "s1")) == 2
    assert not store.put("user:3", entry(version=9))
    assert store.put("user:3", entry(version=11))
    assert [k for k, _ in store.items()] == ["order:1", "user:3"]
    assert store.clear((20, "s1")) == 2
    assert not store.put("order:2", entry(version=19))
    assert store.put("order:2", entry(version=21))


def test_clear_keeps_an_entry_set_after_it() -> None:
    store = MemoryStore(100, 10**6)
    store.put("k", entry(version=30))
    assert store.clear((20, "s1")) == 0
    assert store.get("k") is not None


def test_drop_all_forgets_entries_but_not_deletions() -> None:
    store = MemoryStore(100, 10**6)
    store.put("a", entry(version=1))
    store.remove("b", (5, "s1"))
    assert store.drop_all() == 1
    assert store.bytes == 0
    assert not store.put("b", entry(version=4))


def test_add_stores_only_when_nothing_is_there() -> None:
    store = MemoryStore(100, 10**6)
    assert store.add("k", entry(b"1", version=1)) is None
    current = store.add("k", entry(b"2", version=2))
    assert current is not None
    assert current.data == b"1"


def test_update_is_atomic_across_threads() -> None:
    store = MemoryStore(100, 10**6)
    versions = iter(range(1, 10**6))
    lock = threading.Lock()

    def add_one(current: Entry | None) -> Entry:
        with lock:
            version = next(versions)
        return entry(str(int_value("c", "n", current) + 1).encode(), version=version)

    def work() -> None:
        for _ in range(2000):
            store.update("n", add_one)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = store.get("n")
    assert got is not None
    assert int(got.data) == 16000


def test_int_value_refuses_what_is_not_an_integer() -> None:
    assert int_value("c", "k", None) == 0
    assert int_value("c", "k", entry(b"41")) == 41
    for data in (b'"41"', b"1.5", b"true", b"[1]"):
        with pytest.raises(CacheError, match="not an integer"):
            int_value("c", "k", entry(data))


def test_many_threads_reading_and_writing_keep_the_limits_and_the_byte_count() -> None:
    store = MemoryStore(max_entries=500, max_bytes=40_000)
    clock = iter(range(1, 10**7))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(3000):
                key = f"k{(n * 7 + worker) % 900}"
                with lock:
                    version = next(clock)
                if n % 5 == 0:
                    store.remove(key, (version, "s"))
                elif n % 3 == 0:
                    store.get(key)
                else:
                    store.put(key, entry(b"v" * (n % 50), version=version))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(store) <= 500
    assert store.bytes <= 40_000
    assert store.bytes == sum(e.size for _, e in store.items())
