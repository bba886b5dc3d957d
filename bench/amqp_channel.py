"""AMQP channel throughput: messages/s a Splice AMQP channel consumes into a trivial service, beside a bare
aio-pika consumer doing the same work (decode the JSON body, call a trivial coroutine, then acknowledge).

Both sides are processes of their own consuming a durable queue of this machine's RabbitMQ (127.0.0.1:5672,
guest/guest, or ``--address``/``--password``) with the same prefetch. Each round fills a fresh queue with
``--messages`` persistent JSON messages first, then starts the consumer: for Splice, a channel created
through the admin API (``POST /splice/admin/channels``, ``kind = "amqp"``) on a one-server quickstart cluster
that has an ``mq`` connection and the service deployed; for the baseline, this script's ``--serve-bare``
subprocess. A monitor polls the queue's ready count (a passive declare every 10 ms) and takes the rate from
its first drop to empty, so neither side's start-up counts, and reads the consumer process's CPU time over the
same span (``/proc/PID/stat``): CPU per message moves less than messages/s when other work shares the machine
(RabbitMQ itself runs on the same cores). The last ``prefetch`` messages may still be
unacknowledged when the queue reads empty (under 1% at the defaults). Rounds alternate the order; the median
counts. Queues have random names and are deleted. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import textwrap
import time
from pathlib import Path

from _common import Processes, create_cluster, machine, median, ratio, run, splice, table, workdir

ADDRESS = "amqp://guest@127.0.0.1:5672/"
PASSWORD = "guest"
SERVICE = """
    from splice.server import Service

    class Sink(Service):
        name = "bench.sink"

        async def handle(self):
            self.response.payload = None
"""


# -- the bare side: aio-pika alone, in a subprocess of its own ---------------------------------------------


def serve_bare(address: str, password: str, queue: str, prefetch: int) -> None:
    """The baseline consumer: ack after the work, like the channel, with nothing of Splice around it."""
    import aio_pika
    from aio_pika.abc import AbstractIncomingMessage

    async def work(payload: object) -> None:
        return None

    async def on_message(message: AbstractIncomingMessage) -> None:
        await work(json.loads(message.body))
        await message.ack()

    async def main() -> None:
        connection = await aio_pika.connect_robust(address, password=password)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.declare_queue(queue, durable=True)
        await declared.consume(on_message)
        await asyncio.Future()  # until SIGTERM

    asyncio.run(main())


# -- the broker side: fill a queue, watch it drain ---------------------------------------------------------


async def fill(address: str, password: str, queue: str, count: int) -> None:
    """``count`` persistent JSON messages in ``queue`` (declared durable), confirmed by the broker."""
    import aio_pika

    connection = await aio_pika.connect(address, password=password)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        exchange = channel.default_exchange
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            json.dumps({"n": n}).encode(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        queue,
                    )
                    for n in range(start, min(start + 500, count))
                )
            )
    finally:
        await connection.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat``, in clock ticks of 10 ms)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain_rate(address: str, password: str, queue: str, timeout: float, pid: int) -> tuple[float, int, float]:
    """Poll ``queue``'s ready count until it is 0: messages/s from its first drop to empty, the messages counted,
    and the consumer process's (``pid``) CPU microseconds per message meanwhile."""
    import aio_pika

    connection = await aio_pika.connect(address, password=password)  # not robust: it would cache the declare
    try:
        channel = await connection.channel()

        async def ready() -> int:
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count or 0

        full = await ready()
        deadline = time.monotonic() + timeout
        while (left := await ready()) >= full:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing consumed queue {queue} within {timeout:g} s")
            await asyncio.sleep(0.01)
        started, first, cpu = time.perf_counter(), left, cpu_seconds(pid)
        while left > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue {queue} still held {left} messages after {timeout:g} s")
            await asyncio.sleep(0.01)
            left = await ready()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
        return (first / elapsed if elapsed else float("nan")), first, cpu / first * 1e6
    finally:
        await connection.close()


async def delete(address: str, password: str, *queues: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(address, password=password)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
    finally:
        await connection.close()


# -- one round of each side --------------------------------------------------------------------------------


class SpliceSide:
    """A one-server cluster with the ``mq`` connection and ``bench.sink`` deployed; a channel per round."""

    def __init__(self, work: Path, procs: Processes, address: str, password: str) -> None:
        import httpx

        self.cluster = create_cluster(work, "cluster", procs)
        splice("start", str(self.cluster.directory))
        self.admin = httpx.Client(
            base_url=self.cluster.url, headers={"Authorization": f"Bearer {self.cluster.token}"}, timeout=60
        )
        body = {"name": "mq", "kind": "amqp", "address": address, "password": password}
        self._check(self.admin.post("/splice/admin/outgoing", json=body))
        source = textwrap.dedent(SERVICE).lstrip()
        self._check(self.admin.post("/splice/admin/deploy", json={"modules": [{"path": "sink.py", "source": source}]}))
        self.pid = self.cluster.server_pid()

    @staticmethod
    def _check(answer: object) -> None:
        status = getattr(answer, "status_code", 0)
        if status not in (200, 201):
            raise RuntimeError(f"the admin API answered {status}: {getattr(answer, 'text', '')[:500]}")

    def start(self, name: str, queue: str, prefetch: int) -> None:
        body = {"name": name, "kind": "amqp", "service": "bench.sink", "connection": "mq", "queue": queue}
        self._check(self.admin.post("/splice/admin/channels", json={**body, "prefetch": prefetch}))

    def stop(self, name: str) -> None:
        self._check(self.admin.delete(f"/splice/admin/channels/{name}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Prints messages/s and the ratio.")
    parser.add_argument("--messages", type=int, default=20000, help="messages per round (default 20,000)")
    parser.add_argument("--prefetch", type=int, default=10, help="prefetch of both consumers (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side; the median counts (default 3)")
    parser.add_argument("--address", default=ADDRESS, help=f"the broker (default {ADDRESS})")
    parser.add_argument("--password", default=PASSWORD, help="its password (default guest)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-bare", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.address, args.password, args.serve_bare, args.prefetch)
        return 0

    rates: dict[str, list[float]] = {"bare aio-pika": [], "splice channel": []}
    cpus: dict[str, list[float]] = {case: [] for case in rates}
    timeout = max(60.0, args.messages / 200)
    with workdir(args.keep, "splice-bench-amqp-") as work, Processes() as procs:
        side = SpliceSide(work, procs, args.address, args.password)
        print(f"AMQP channel: {args.messages:,} messages a round, prefetch {args.prefetch}, {args.rounds} rounds")
        print(f"{machine()}")
        for index in range(args.rounds):
            order = ["bare aio-pika", "splice channel"]
            for case in order if index % 2 == 0 else order[::-1]:
                queue = f"splice-bench-{secrets.token_hex(5)}"
                try:
                    asyncio.run(fill(args.address, args.password, queue, args.messages))
                    if case == "bare aio-pika":
                        bare = [sys.executable, __file__, "--serve-bare", queue, "--prefetch", str(args.prefetch)]
                        proc = procs.start([*bare, "--address", args.address, "--password", args.password])
                        try:
                            drained = drain_rate(args.address, args.password, queue, timeout, proc.pid)
                            rate, counted, cpu = asyncio.run(drained)
                        finally:
                            proc.terminate()
                            proc.wait(10)
                    else:
                        name = f"bench-{index}"
                        side.start(name, queue, args.prefetch)
                        try:
                            drained = drain_rate(args.address, args.password, queue, timeout, side.pid)
                            rate, counted, cpu = asyncio.run(drained)
                        finally:
                            side.stop(name)
                finally:
                    asyncio.run(delete(args.address, args.password, queue, f"{queue}.retry", f"{queue}.dead"))
                rates[case].append(rate)
                cpus[case].append(cpu)
                print(
                    f"  round {index + 1}  {case:15} {rate:9,.0f} messages/s, {cpu:6.1f} us CPU a message"
                    f" ({counted:,} counted)",
                    flush=True,
                )
        side.admin.close()

    rows = [[case, median(values), min(values), max(values), median(cpus[case])] for case, values in rates.items()]
    print()
    print(table(["consumer", "messages/s (median)", "min", "max", "us CPU a message"], rows))
    value = ratio(median(rates["splice channel"]), median(rates["bare aio-pika"]))
    cost = ratio(median(cpus["splice channel"]), median(cpus["bare aio-pika"]))
    print(f"\nratio splice channel / bare aio-pika: {value:.2f} of the messages/s, {cost:.2f}x the CPU a message")
    return 0


if __name__ == "__main__":
    run(main)
