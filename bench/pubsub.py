"""Pub/sub: publish -> delivered to a service subscriber, messages/s and latency, beside RabbitMQ in the same run.

Splice: a one-server cluster on SQLite and one on PostgreSQL (a fresh database of the benchmark's own on the local
server, dropped at the end). A service (``bench.publish``, invoked once through the admin API) publishes
``--messages`` messages to a topic from ``--concurrency`` coroutines (``await self.apublish(...)``), each message
carrying the time it was published; the push subscription's ``async def handle`` (``bench.sink``) notes when it got
it. Cases: a persistent topic on SQLite and on PostgreSQL (the subscription ordered, the default; on SQLite also
an unordered one), and a non-persistent topic (kept in memory on the publishing server).

Baseline: RabbitMQ (127.0.0.1:5672, guest/guest) through aio-pika in this process: a durable queue, persistent
messages published from the same number of coroutines on one channel with publisher confirms (each publish awaits
its confirm, as each Splice publish awaits its commit), one consumer with manual acks (prefetch ``--prefetch``).

Figures per case, under load (``--messages`` from ``--concurrency`` publishers): publish rate (messages / time until
the last publish returned), delivery rate (messages / time from the first publish until the last delivery), and
publish -> delivery latency p50/p99, which includes waiting behind the messages published before; then latency alone,
``--latency-messages`` published one at a time (each publish awaited before the next). Rounds alternate the order of
the cases; medians count. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import Processes, create_cluster, machine, median, percentile, ratio, run, splice, table, workdir

ADDRESS = "amqp://guest@127.0.0.1:5672/"
PASSWORD = "guest"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SERVICES = """
    import asyncio
    import time

    from splice.server import Service

    SEEN = {}
    \"\"\"Run name -> {message number: (published, received)}.\"\"\"


    class Publish(Service):
        name = "bench.publish"

        async def handle(self):
            p = self.request.payload
            numbers = iter(range(p["count"]))

            async def publisher():
                for i in numbers:
                    await self.apublish(p["topic"], {"run": p["run"], "i": i, "t": time.time()})

            began = time.time()
            await asyncio.gather(*(publisher() for _ in range(p["concurrency"])))
            self.response.payload = {"began": began, "published": time.time()}


    class Sink(Service):
        name = "bench.sink"

        async def handle(self):
            p = self.request.payload
            SEEN.setdefault(p["run"], {}).setdefault(p["i"], [p["t"], time.time()])


    class Results(Service):
        name = "bench.results"

        async def handle(self):
            p = self.request.payload
            seen = SEEN.get(p["run"], {})
            if len(seen) < p["count"]:
                self.response.payload = {"count": len(seen)}
            else:
                self.response.payload = {"count": len(seen), "times": list(SEEN.pop(p["run"]).values())}
"""
CASES = {
    # case -> (cluster, topic, persistent, ordered)
    "splice persistent SQLite": ("sqlite", "bench.persistent", True, True),
    "splice persistent SQLite, unordered": ("sqlite", "bench.parallel", True, False),
    "splice persistent PostgreSQL": ("postgresql", "bench.persistent", True, True),
    "splice non-persistent": ("sqlite", "bench.memory", False, True),
}
RABBITMQ = "RabbitMQ (aio-pika)"


def figures(began: float, published: float, times: list[tuple[float, float]]) -> dict[str, float]:
    """Rates and latencies (ms) of one round from (published, received) wall-clock pairs."""
    latencies = [(got - sent) * 1000 for sent, got in times]
    last = max(got for _, got in times)
    count = len(times)
    return {
        "publish_rate": count / (published - began),
        "delivery_rate": count / (last - began),
        "p50": median(latencies),
        "p99": percentile(latencies, 99),
    }


# -- Splice ------------------------------------------------------------------------------------------------


class SpliceSide:
    """A started one-server cluster with the bench services, the topics and their push subscriptions."""

    def __init__(self, work: Path, procs: Processes, label: str, odb: str | None, topics: list[tuple[str, bool, bool]]):
        import httpx

        self.cluster = create_cluster(work, label, procs, 1, *(["--odb", odb] if odb else []))
        splice("start", str(self.cluster.directory))
        self.admin = httpx.Client(
            base_url=self.cluster.url, headers={"Authorization": f"Bearer {self.cluster.token}"}, timeout=300
        )
        source = textwrap.dedent(SERVICES).lstrip()
        self.check(
            self.admin.post("/splice/admin/deploy", json={"modules": [{"path": "bench_ps.py", "source": source}]})
        )
        for topic, persistent, ordered in topics:
            self.check(self.admin.post("/splice/admin/topics", json={"name": topic, "persistent": persistent}))
            body = {"name": topic.replace(".", "-"), "topic": topic, "service": "bench.sink", "ordered": ordered}
            self.check(self.admin.post("/splice/admin/subscriptions", json=body))

    @staticmethod
    def check(answer: Any) -> Any:
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"the admin API answered {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    def invoke(self, service: str, payload: dict[str, Any]) -> Any:
        return self.check(self.admin.post("/splice/admin/invoke", json={"service": service, "payload": payload}))[
            "payload"
        ]

    def round(self, topic: str, count: int, concurrency: int, timeout: float) -> dict[str, float]:
        run_name = secrets.token_hex(4)
        body = {"topic": topic, "run": run_name, "count": count, "concurrency": concurrency}
        sent = self.invoke("bench.publish", body)
        deadline = time.monotonic() + timeout
        while True:
            got = self.invoke("bench.results", {"run": run_name, "count": count})
            if "times" in got:
                return figures(sent["began"], sent["published"], [tuple(t) for t in got["times"]])
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {got['count']} of {count} messages delivered after {timeout:g} s")
            time.sleep(0.05)

    def close(self) -> None:
        self.admin.close()
        splice("stop", str(self.cluster.directory), check=False)


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str | None]:
    """A fresh database on the local PostgreSQL (its asyncpg URL), dropped at the end; None if unreachable."""
    import psycopg

    name = f"splice_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        print(f"PostgreSQL at {server} is not usable ({error}): its case is left out")
        yield None
        return
    try:
        yield server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- RabbitMQ ----------------------------------------------------------------------------------------------


async def rabbitmq_round(
    address: str, password: str, count: int, concurrency: int, prefetch: int, timeout: float
) -> dict[str, float]:
    """One round against RabbitMQ: a fresh durable queue, deleted at the end."""
    import aio_pika
    import aio_pika.exceptions
    from aio_pika.abc import AbstractIncomingMessage

    queue_name = f"splice-bench-{secrets.token_hex(5)}"
    publishing = await aio_pika.connect(address, password=password)
    consuming = await aio_pika.connect(address, password=password)
    try:
        out = await publishing.channel(publisher_confirms=True)
        into = await consuming.channel()
        await into.set_qos(prefetch_count=prefetch)
        queue = await into.declare_queue(queue_name, durable=True)
        seen: dict[int, tuple[float, float]] = {}
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            got = time.time()
            body = json.loads(message.body)
            seen.setdefault(body["i"], (body["t"], got))
            await message.ack()
            if len(seen) >= count:
                done.set()

        tag = await queue.consume(on_message)
        numbers = iter(range(count))

        async def publisher() -> None:
            for i in numbers:
                body = json.dumps({"i": i, "t": time.time()}).encode()
                message = aio_pika.Message(
                    body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json"
                )
                await out.default_exchange.publish(message, routing_key=queue_name)

        began = time.time()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        published = time.time()
        await asyncio.wait_for(done.wait(), timeout)
        await queue.cancel(tag)
        return figures(began, published, list(seen.values()))
    finally:
        with contextlib.suppress(aio_pika.exceptions.AMQPException):
            await (await publishing.channel()).queue_delete(queue_name)
        await publishing.close()
        await consuming.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Prints a table and the ratios.")
    parser.add_argument("--messages", type=int, default=2000, help="messages per round and case (default 2,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="publishing coroutines (default 8)")
    parser.add_argument(
        "--latency-messages", type=int, default=200, help="messages published one at a time for latency (default 200)"
    )
    parser.add_argument("--prefetch", type=int, default=10, help="RabbitMQ consumer prefetch (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the median counts (default 2)")
    parser.add_argument("--address", default=ADDRESS, help=f"RabbitMQ (default {ADDRESS})")
    parser.add_argument("--password", default=PASSWORD, help="its password (default guest)")
    parser.add_argument("--postgres", default=POSTGRES, help=f"a PostgreSQL to make a database in (default {POSTGRES})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    timeout = max(60.0, args.messages / 20)
    loads = {"load": (args.messages, args.concurrency), "one by one": (args.latency_messages, 1)}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with (
        workdir(args.keep, "splice-bench-pubsub-") as work,
        Processes() as procs,
        postgres_database(args.postgres) as postgres,
    ):
        print(
            f"pub/sub: {args.messages:,} messages a round from {args.concurrency} publishers, then"
            f" {args.latency_messages:,} one at a time; {args.rounds} rounds"
        )
        print(machine())
        sides: dict[str, SpliceSide] = {}
        for label, odb in (("sqlite", None), ("postgresql", postgres)):
            if label == "postgresql" and odb is None:
                continue
            topics = sorted({(t, p, o) for c, t, p, o in CASES.values() if c == label})
            sides[label] = SpliceSide(work, procs, label, odb, topics)
        cases = [c for c, (cluster, *_) in CASES.items() if cluster in sides] + [RABBITMQ]
        try:
            for index in range(args.rounds):
                for case in cases if index % 2 == 0 else cases[::-1]:
                    for load, (count, concurrency) in loads.items():
                        if case == RABBITMQ:
                            made = rabbitmq_round(
                                args.address, args.password, count, concurrency, args.prefetch, timeout
                            )
                            result = asyncio.run(made)
                        else:
                            cluster, topic, *_ = CASES[case]
                            result = sides[cluster].round(topic, count, concurrency, timeout)
                        results.setdefault((case, load), []).append(result)
                        print(
                            f"  round {index + 1}  {case:36} {load:10}  publish {result['publish_rate']:8,.0f}/s"
                            f"  delivered {result['delivery_rate']:8,.0f}/s"
                            f"  p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms",
                            flush=True,
                        )
        finally:
            for side in sides.values():
                side.close()
    print_tables(results)
    return 0


def print_tables(results: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    def med(case: str, load: str, key: str) -> float:
        return median([r[key] for r in results[(case, load)]])

    cases = list(dict.fromkeys(case for case, _ in results))
    rows = []
    for case in cases:
        rows.append(
            [
                case,
                med(case, "load", "publish_rate"),
                med(case, "load", "delivery_rate"),
                med(case, "load", "p50"),
                med(case, "load", "p99"),
                ratio(med(case, "load", "delivery_rate"), med(RABBITMQ, "load", "delivery_rate")),
            ]
        )
    print()
    print(table(["under load", "publish/s", "delivered/s", "p50 ms", "p99 ms", "delivered/s vs RabbitMQ"], rows))
    rows = []
    for case in cases:
        p50, p99 = med(case, "one by one", "p50"), med(case, "one by one", "p99")
        rows.append([case, p50, p99, ratio(p50, med(RABBITMQ, "one by one", "p50"))])
    print()
    print(table(["one publish at a time", "p50 ms", "p99 ms", "p50 vs RabbitMQ"], rows))


if __name__ == "__main__":
    run(main)
