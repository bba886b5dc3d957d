"""Push subscribers that record every message delivered to them, and a publisher, for test_pubsub_delivery.py.

Not imported by the tests: the test deploys this file's text to its cluster, with ``TARGET`` set to where the
records go: ``sqlite:<path>`` (a file of the test's own in WAL mode, shared by both servers) or ``postgresql:<dsn>``
(a table in the test's database). Each delivery adds one row (subscription, seq from the payload, server, pid,
attempt) in a transaction of its own, committed before the service returns: a server killed after the row and
before its acknowledgement makes a duplicate, which is what at-least-once delivery allows.
"""

import os
import sqlite3
import threading

from splice.server import Service

TARGET = "sqlite:/nowhere"
_local = threading.local()


def _connection():
    """This worker thread's connection (made once per thread: connecting per message would be the bottleneck)."""
    made = getattr(_local, "connection", None)
    if made is None:
        kind, _, where = TARGET.partition(":")
        if kind == "sqlite":
            made = sqlite3.connect(where, timeout=60, isolation_level=None)
            made.execute("PRAGMA synchronous=NORMAL")
        else:
            import psycopg

            made = psycopg.connect(where, autocommit=True)
        _local.connection = made
    return made


def record(service, table):
    message = service.request.pubsub
    row = (message.subscription, service.request.payload["seq"], service.server, os.getpid(), message.attempt)
    marks = "?, ?, ?, ?, ?" if TARGET.startswith("sqlite") else "%s, %s, %s, %s, %s"
    _connection().execute(f"INSERT INTO {table} (subscription, seq, server, pid, attempt) VALUES ({marks})", row)


class RecordOrdered(Service):
    name = "e2e.record-ordered"

    def handle(self):
        record(self, "got_ordered")


class RecordParallel(Service):
    name = "e2e.record-parallel"

    def handle(self):
        record(self, "got_parallel")


class Publish(Service):
    """Publish the numbers ``seqs`` to ``topic`` in order, each keyed by its number; answers how many of them were
    repeats of a publish already stored (a batch sent again after the server running it first was killed)."""

    name = "e2e.publish"

    async def handle(self):
        p = self.request.payload
        repeats = 0
        for seq in p["seqs"]:
            published = await self.apublish(p["topic"], {"seq": seq}, key=f"seq-{seq}")
            repeats += published.duplicate
        self.response.payload = repeats
