"""Cache: get/set per second from a service and cluster-wide propagation, beside redis-py in the same run.

Splice: two-server clusters (SQLite ODB), once with servers telling each other over HTTP and once over the Redis bus
(a ``redis-server`` of the benchmark's own on a free port). On each:

- ops/s from a service: ``bench.cache-loop`` (plain ``def handle``, ``self.cache[...]``) and ``bench.cache-aloop``
  (``async def handle``, ``await ...aget/aset``), invoked once each, do ``--ops`` sets then as many gets of
  distinct keys and time each phase inside the service; on the ``default`` (memory) cache, and on the HTTP-bus
  cluster also on a ``redis``-backed cache (an outgoing redis connection to the local Redis, 127.0.0.1:6379);
- ops/s per call: one admin API invoke (``POST /splice/admin/invoke``) per get, one keep-alive client, one at a time;
- propagation: a service on server 2 (``bench.cache-waiter``) waits for each of ``--sets`` keys in turn (``aget``
  every 0.2 ms) while one on server 1 (``bench.cache-setter``) sets them ``--gap`` ms apart, each value being the
  time it was set; the figure is the time seen on server 2 minus that value (one machine, one clock).

Baselines, in the same run: redis-py (sync client, one connection) SET then GET of as many keys against the local
Redis (127.0.0.1:6379 or ``--redis``), and the same with its asyncio client (what a redis cache's async methods
use); and Redis pub/sub from redis-py (PUBLISH on one connection, a subscriber
thread on another, the same count and gap) as the floor of a message crossing Redis once. Benchmarks are not tests:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    Processes,
    create_cluster,
    free_port,
    machine,
    median,
    percentile,
    ratio,
    run,
    splice,
    table,
    wait_for,
    workdir,
)

REDIS = "redis://127.0.0.1:6379/0"
SERVICES = """
    import asyncio
    import time

    from splice.server import Service


    def _rates(began, middle, ended, count):
        return {"set": count / (middle - began), "get": count / (ended - middle)}


    class Loop(Service):
        name = "bench.cache-loop"

        def handle(self):
            p = self.request.payload
            cache = self.cache[p["cache"]]
            keys = [f"{p['prefix']}{i}" for i in range(p["count"])]
            began = time.perf_counter()
            for i, key in enumerate(keys):
                cache.set(key, i)
            middle = time.perf_counter()
            for key in keys:
                cache.get(key)
            self.response.payload = _rates(began, middle, time.perf_counter(), len(keys))


    class AsyncLoop(Service):
        name = "bench.cache-aloop"

        async def handle(self):
            p = self.request.payload
            cache = self.cache[p["cache"]]
            keys = [f"{p['prefix']}{i}" for i in range(p["count"])]
            began = time.perf_counter()
            for i, key in enumerate(keys):
                await cache.aset(key, i)
            middle = time.perf_counter()
            for key in keys:
                await cache.aget(key)
            self.response.payload = _rates(began, middle, time.perf_counter(), len(keys))


    class Clear(Service):
        name = "bench.cache-clear"

        async def handle(self):
            self.response.payload = await self.cache[self.request.payload["cache"]].aclear()


    class One(Service):
        name = "bench.cache-one"

        async def handle(self):
            self.response.payload = await self.cache["default"].aget(self.request.payload["key"])


    class Setter(Service):
        name = "bench.cache-setter"

        async def handle(self):
            p = self.request.payload
            cache = self.cache["default"]
            for i in range(p["count"]):
                await asyncio.sleep(p["gap"])
                await cache.aset(f"{p['prefix']}{i}", time.time())


    class Waiter(Service):
        name = "bench.cache-waiter"

        async def handle(self):
            p = self.request.payload
            cache = self.cache["default"]
            deadline = time.monotonic() + p["timeout"]
            seen = []
            for i in range(p["count"]):
                key = f"{p['prefix']}{i}"
                while (value := await cache.aget(key)) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{key} never arrived ({len(seen)} of {p['count']} did)")
                    await asyncio.sleep(0.0002)
                seen.append(time.time() - value)
            self.response.payload = seen
"""


class SpliceSide:
    """A started two-server cluster with the bench services (and, if asked, a redis-backed cache ``shared``)."""

    def __init__(self, work: Path, procs: Processes, label: str, extra: list[str], redis_cache: str | None) -> None:
        import httpx

        self.label = label
        self.cluster = create_cluster(work, label, procs, 2, *extra)
        splice("start", str(self.cluster.directory))
        self.urls = [self.cluster.url, f"http://127.0.0.1:{self.cluster.port + 1}"]
        headers = {"Authorization": f"Bearer {self.cluster.token}"}
        self.admins = [httpx.Client(base_url=url, headers=headers, timeout=300) for url in self.urls]
        source = textwrap.dedent(SERVICES).lstrip()
        self.check(
            self.admins[0].post("/splice/admin/deploy", json={"modules": [{"path": "bench_c.py", "source": source}]})
        )
        self.caches = ["default"]
        if redis_cache:
            body = {"name": "r", "kind": "redis", "address": redis_cache}
            self.check(self.admins[0].post("/splice/admin/outgoing", json=body))
            body = {"name": "shared", "backend": "redis", "connection": "r"}
            self.check(self.admins[0].post("/splice/admin/caches", json=body))
            self.caches.append("shared")

    @staticmethod
    def check(answer: Any) -> Any:
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"the admin API answered {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    def invoke(self, server: int, service: str, payload: dict[str, Any]) -> Any:
        body = {"service": service, "payload": payload}
        return self.check(self.admins[server].post("/splice/admin/invoke", json=body))["payload"]

    def loops(self, count: int) -> dict[str, float]:
        """ops/s of sets and gets from a service, per cache and face."""
        rates = {}
        for cache in self.caches:
            for service, face in (("bench.cache-loop", "def"), ("bench.cache-aloop", "async")):
                prefix = f"bench-{secrets.token_hex(3)}-"
                got = self.invoke(0, service, {"cache": cache, "count": count, "prefix": prefix})
                rates[f"{cache} cache, {face} handle: set"] = got["set"]
                rates[f"{cache} cache, {face} handle: get"] = got["get"]
        return rates

    def per_call(self, count: int) -> float:
        """gets/s when each get is an admin API invoke."""
        self.invoke(0, "bench.cache-one", {"key": "warm"})
        began = time.perf_counter()
        for i in range(count):
            self.invoke(0, "bench.cache-one", {"key": f"k{i}"})
        return count / (time.perf_counter() - began)

    def propagation(self, count: int, gap: float) -> list[float]:
        """ms from a set on server 1 until a service on server 2 sees it."""
        body = {"count": count, "gap": gap, "prefix": f"p-{secrets.token_hex(3)}-", "timeout": 120}
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(self.invoke, 1, "bench.cache-waiter", body)
            time.sleep(0.2)  # the waiter's request under way before the first set
            self.invoke(0, "bench.cache-setter", body)
            return [seconds * 1000 for seconds in waiting.result()]

    def clear(self) -> None:
        for cache in self.caches[1:]:
            self.invoke(0, "bench.cache-clear", {"cache": cache})

    def close(self) -> None:
        for client in self.admins:
            client.close()
        splice("stop", str(self.cluster.directory), check=False)


# -- redis-py ----------------------------------------------------------------------------------------------


def redis_ops(url: str, count: int) -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(url)
    keys = [f"splice-bench-{secrets.token_hex(3)}-{i}" for i in range(count)]
    try:
        began = time.perf_counter()
        for i, key in enumerate(keys):
            client.set(key, i)
        middle = time.perf_counter()
        for key in keys:
            client.get(key)
        ended = time.perf_counter()
        for start in range(0, count, 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()
    return {"set": count / (middle - began), "get": count / (ended - middle)}


def redis_async_ops(url: str, count: int) -> dict[str, float]:
    """The same with redis-py's asyncio client (what a redis cache's ``aget``/``aset`` use), one connection."""
    import asyncio

    import redis.asyncio

    async def measure() -> dict[str, float]:
        client = redis.asyncio.Redis.from_url(url)
        keys = [f"splice-bench-{secrets.token_hex(3)}-{i}" for i in range(count)]
        try:
            began = time.perf_counter()
            for i, key in enumerate(keys):
                await client.set(key, i)
            middle = time.perf_counter()
            for key in keys:
                await client.get(key)
            ended = time.perf_counter()
            for start in range(0, count, 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()
        return {"set": count / (middle - began), "get": count / (ended - middle)}

    return asyncio.run(measure())


def redis_pubsub(url: str, count: int, gap: float) -> list[float]:
    """ms from PUBLISH until a subscriber thread has the message (its payload is the time it was sent)."""
    import redis

    channel = f"splice-bench-{secrets.token_hex(3)}"
    sender, receiver = redis.Redis.from_url(url), redis.Redis.from_url(url)
    listening = receiver.pubsub()
    listening.subscribe(channel)
    listening.get_message(timeout=5)  # the subscribe confirmation
    seen: list[float] = []

    def receive() -> None:
        while len(seen) < count:
            message = listening.get_message(timeout=10)
            if message is None:
                return
            if message["type"] == "message":
                seen.append((time.time() - float(message["data"])) * 1000)

    thread = threading.Thread(target=receive)
    thread.start()
    try:
        for _ in range(count):
            time.sleep(gap)
            sender.publish(channel, repr(time.time()))
        thread.join(30)
    finally:
        listening.close()
        sender.close()
        receiver.close()
    return seen


def start_redis(work: Path, procs: Processes) -> str | None:
    """A redis-server of this benchmark's own for the Redis bus (none: that cluster is left out)."""
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: only the HTTP bus is measured")
        return None
    port = free_port()
    procs.start(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=work,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            print("the benchmark's redis-server did not answer: only the HTTP bus is measured")
            return None
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Prints tables and the ratios.")
    parser.add_argument("--ops", type=int, default=20000, help="sets (and as many gets) per loop (default 20,000)")
    parser.add_argument("--calls", type=int, default=500, help="admin API invokes of one get (default 500)")
    parser.add_argument("--sets", type=int, default=200, help="propagated sets per bus (default 200)")
    parser.add_argument("--gap", type=float, default=5.0, help="ms between two propagated sets (default 5)")
    parser.add_argument("--redis", default=REDIS, help=f"the Redis of the baseline and redis cache (default {REDIS})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    gap = args.gap / 1000
    loops: dict[str, dict[str, float]] = {}
    spreads: dict[str, list[float]] = {}
    calls: dict[str, float] = {}
    with workdir(args.keep, "splice-bench-cache-") as work, Processes() as procs:
        print(
            f"cache: {args.ops:,} ops per loop, {args.calls} invokes, {args.sets} propagated sets {args.gap:g} ms apart"
        )
        print(machine())
        bus = start_redis(work, procs)
        buses = [("http-bus", [], args.redis)] + ([("redis-bus", ["--redis", bus], None)] if bus else [])
        for label, extra, redis_cache in buses:
            side = SpliceSide(work, procs, label, extra, redis_cache)
            try:
                wait_for(f"{side.urls[1]}/splice/ping")
                loops[label] = side.loops(args.ops)
                calls[label] = side.per_call(args.calls)
                spreads[f"splice {label}: set on server 1 -> seen on server 2"] = side.propagation(args.sets, gap)
                side.clear()
            finally:
                side.close()
            print(f"  {label} measured", flush=True)
        baseline = redis_ops(args.redis, args.ops)
        asynchronous = redis_async_ops(args.redis, args.ops)
        spreads["redis-py PUBLISH -> subscriber (floor of one Redis hop)"] = redis_pubsub(args.redis, args.sets, gap)

    print()
    rows = []
    for label, rates in loops.items():
        for name, rate in rates.items():
            op = name.rsplit(": ", 1)[1]
            rows.append([f"splice {label}, {name}", rate, ratio(rate, baseline[op])])
        rows.append([f"splice {label}, admin invoke per get", calls[label], ratio(calls[label], baseline["get"])])
    rows += [["redis-py set (one connection)", baseline["set"], 1.0], ["redis-py get", baseline["get"], 1.0]]
    for op in ("set", "get"):
        rows.append([f"redis-py asyncio client {op}", asynchronous[op], ratio(asynchronous[op], baseline[op])])
    print(table(["ops/s", "ops/s", "vs redis-py"], rows))
    print()
    floor = median(spreads["redis-py PUBLISH -> subscriber (floor of one Redis hop)"])
    rows = [[k, len(v), median(v), percentile(v, 99), max(v), ratio(median(v), floor)] for k, v in spreads.items()]
    print(table(["propagation, ms", "n", "p50", "p99", "max", "p50 vs redis pub/sub"], rows))
    return 0


if __name__ == "__main__":
    run(main)
