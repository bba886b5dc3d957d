"""Guaranteed delivery end to end: 10,000 messages to a persistent topic with an ordered and an unordered push
subscription across a real two-server cluster, one server killed with ``kill -9`` in the middle and started again.

The servers are ``splice start`` subprocesses on SQLite, then on PostgreSQL. Both subscriptions' services
(``tests/e2e/pubsub_recorders.py``) record each delivery in a database both servers reach: a SQLite file of the
test's own (WAL), or a table in the test's PostgreSQL database. A few client threads publish, each its own share of
the numbers in order, each number with an idempotency key, in batches through a publishing service invoked with the
admin API, alternating between the servers. Once ~3,000 are published and deliveries run, the server delivering the
ordered subscription is killed; publishing goes on through the other, and the killed one is started again. Then:
every number reached each subscription, the ordered one first-delivered each thread's numbers in the order published,
and every message delivered twice had been delivered by the killed server before it died (at-least-once; the
duplicates are printed and written to a JSON file).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Cluster, alive, drop_everything, eventually, make_cluster, running, splice

COUNT = 10_000
PUBLISHERS = 4
BATCH = 25
"""Messages a publisher thread has ``e2e.publish`` publish in one call (one HTTP request each would cost the
servers a third more CPU: the file is to run in a few minutes)."""
KILL_AFTER = 3_000
"""Published messages before the kill."""
RESTART_AFTER = 6_000
"""Published messages before the killed server is started again."""
WAIT = 300.0
"""Seconds for every message to arrive."""
TOPIC = "orders.created"
SUBSCRIPTIONS = {"ordered": "got_ordered", "parallel": "got_parallel"}
"""Subscription name -> its recorder's table."""
LEASE = 10.0
"""Seconds a claimed delivery stays with its server: how long the killed server's claims hold their messages."""
RECORDERS = (Path(__file__).parent / "pubsub_recorders.py").read_text()


@dataclass
class Records:
    """Where the recorders write, and the test reads: a SQLite file or a PostgreSQL database."""

    target: str
    """``sqlite:<path>`` or ``postgresql:<dsn>``, as the recorders' ``TARGET``."""

    @property
    def sqlite(self) -> bool:
        return self.target.startswith("sqlite:")

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        where = self.target.partition(":")[2]
        made: Any = sqlite3.connect(where, timeout=60) if self.sqlite else psycopg.connect(where, autocommit=True)
        try:
            yield made
        finally:
            made.close()

    def create(self) -> None:
        key = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.sqlite else "BIGSERIAL PRIMARY KEY"
        with self.connect() as db:
            if self.sqlite:
                db.execute("PRAGMA journal_mode=WAL")
            for table in SUBSCRIPTIONS.values():
                db.execute(
                    f"CREATE TABLE {table} (id {key}, subscription VARCHAR(100), seq INTEGER, server VARCHAR(100),"
                    " pid INTEGER, attempt INTEGER)"
                )
            if self.sqlite:
                db.commit()

    def rows(self, table: str) -> list[tuple[int, str, int, int]]:
        """(seq, server, pid, attempt) of every delivery recorded in ``table``, in the order recorded."""
        with self.connect() as db:
            return [tuple(r) for r in db.execute(f"SELECT seq, server, pid, attempt FROM {table} ORDER BY id")]

    def count(self, table: str) -> int:
        with self.connect() as db:
            return int(db.execute(f"SELECT COUNT(DISTINCT seq) FROM {table}").fetchone()[0])


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, Records]]:
    """(the ODB URL, None for the quickstart's SQLite; where the recorders write)."""
    if request.param == "sqlite":
        yield None, Records(f"sqlite:{tmp_path / 'records.sqlite'}")
        return
    odb = request.getfixturevalue("server_databases")["postgresql"]
    asyncio.run(drop_everything(odb))
    yield odb, Records("postgresql:" + odb.replace("postgresql+asyncpg://", "postgresql://"))
    asyncio.run(drop_everything(odb))


def admin(url: str, token: str, method: str, path: str, **options: Any) -> httpx.Response:
    return httpx.request(
        method, f"{url}/splice/admin{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60, **options
    )


def created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


@dataclass
class Publishing:
    """Client threads publishing ``COUNT`` messages: thread ``t`` publishes the numbers ``t, t + PUBLISHERS, ...`` in
    order, ``BATCH`` at a time through the service ``e2e.publish`` (each batch once the previous one was answered),
    alternating between the servers that are up."""

    cluster: Cluster
    published: int = 0
    retries: int = 0
    duplicates: int = 0
    down: int | None = None
    """The index of the server not to publish to (killed)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def thread(self, first: int) -> None:
        clients = [
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {self.cluster.token}"}, timeout=60)
            for url in self.cluster.urls
        ]
        mine = list(range(first, COUNT, PUBLISHERS))
        try:
            for turn, start in enumerate(range(0, len(mine), BATCH), start=first):  # half the threads start on each
                self.publish(clients, mine[start : start + BATCH], turn)
        finally:
            for client in clients:
                client.close()

    def publish(self, clients: list[httpx.Client], seqs: list[int], turn: int) -> None:
        """Publish ``seqs`` until a server says they are stored. A batch cut short by a kill is sent again whole to
        the other server: the keys of those already stored make them repeats, not enqueued again."""
        body = {"service": "e2e.publish", "payload": {"topic": TOPIC, "seqs": seqs}}
        deadline = time.monotonic() + 120
        attempt = 0
        while True:
            server = (turn + attempt) % len(clients)
            if server == self.down:
                server = (server + 1) % len(clients)
            try:
                answer = clients[server].post("/splice/admin/invoke", json=body)
                if answer.status_code == 200:
                    with self.lock:
                        self.published += len(seqs)
                        self.duplicates += answer.json()["payload"]
                    return
                problem = f"{answer.status_code} {answer.text[:300]}"
            except httpx.TransportError as error:
                problem = repr(error)
            attempt += 1
            with self.lock:
                self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"publishing {seqs[0]}... failed for 120 s, last: {problem}")
            time.sleep(0.05)


def first_deliveries(rows: list[tuple[int, str, int, int]]) -> list[int]:
    seen: set[int] = set()
    order = []
    for seq, *_ in rows:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order


def out_of_order(order: list[int]) -> list[tuple[int, int]]:
    """(earlier, later) pairs of one publisher thread's numbers first-delivered the wrong way round."""
    wrong = []
    for thread in range(PUBLISHERS):
        mine = [seq for seq in order if seq % PUBLISHERS == thread]
        wrong += [(a, b) for a, b in itertools.pairwise(mine) if b < a]
    return wrong


def depths(cluster: Cluster) -> dict[str, Any]:
    answer = created(admin(cluster.url, cluster.token, "GET", "/subscriptions"))
    return {s["name"]: s for s in answer["subscriptions"] if s["name"] in SUBSCRIPTIONS}


def empty(row: dict[str, Any]) -> bool:
    depth = row.get("depth", row)
    return all(depth.get(what, 0) == 0 for what in ("ready", "in_flight", "dead"))


def test_no_message_is_lost_when_a_server_is_killed_mid_way(
    tmp_path: Path, backend: tuple[str | None, Records]
) -> None:
    odb, records = backend
    began = time.monotonic()
    records.create()
    made = make_cluster(tmp_path / "cluster", servers=2, odb=odb)
    with running(made) as cluster:
        source = RECORDERS.replace('TARGET = "sqlite:/nowhere"', f"TARGET = {records.target!r}")
        deployed = created(
            admin(
                cluster.url,
                cluster.token,
                "POST",
                "/deploy",
                json={"modules": [{"path": "e2e_rec.py", "source": source}]},
            )
        )
        assert deployed["status"] == "deployed", deployed
        created(admin(cluster.url, cluster.token, "POST", "/topics", json={"name": TOPIC}))
        for name, ordered in (("ordered", True), ("parallel", False)):
            body = {"name": name, "topic": TOPIC, "service": f"e2e.record-{name}", "ordered": ordered, "lease": LEASE}
            created(admin(cluster.url, cluster.token, "POST", "/subscriptions", json=body))

        publishing = Publishing(cluster)
        with concurrent.futures.ThreadPoolExecutor(PUBLISHERS) as pool:
            threads = [pool.submit(publishing.thread, t) for t in range(PUBLISHERS)]
            eventually(lambda: publishing.published >= KILL_AFTER or any(t.done() for t in threads), WAIT)
            eventually(lambda: all(records.count(table) >= 100 for table in SUBSCRIPTIONS.values()), WAIT)
            # The victim: the server delivering the ordered subscription now, so that the kill cuts into its order.
            victim_name = records.rows("got_ordered")[-1][1]
            victim = [f"server{i + 1}" for i in range(2)].index(victim_name)
            pid = created(admin(cluster.urls[victim], cluster.token, "GET", "/server"))["pid"]
            publishing.down = victim
            os.kill(pid, signal.SIGKILL)
            killed_at = (publishing.published, {t: records.count(t) for t in SUBSCRIPTIONS.values()})
            eventually(lambda: not alive(pid), 30)
            eventually(lambda: publishing.published >= RESTART_AFTER or all(t.done() for t in threads), WAIT)
            splice("start", str(cluster.directory))
            publishing.down = None
            restarted_at = publishing.published
            for thread in threads:
                thread.result()
        published_in = time.monotonic() - began

        eventually(lambda: all(records.count(t) == COUNT for t in SUBSCRIPTIONS.values()), WAIT)
        delivered_in = time.monotonic() - began
        eventually(lambda: all(empty(row) for row in depths(cluster).values()) and len(depths(cluster)) == 2, 60)
        final = depths(cluster)

    report: dict[str, Any] = {
        "odb": "postgresql" if odb else "sqlite",
        "killed": {"server": victim_name, "pid": pid, "published": killed_at[0], "recorded": killed_at[1]},
        "restarted_after_published": restarted_at,
        "publish_retries": publishing.retries,
        "publish_duplicates": publishing.duplicates,
        "seconds": {"published": round(published_in, 1), "all_delivered": round(delivered_in, 1)},
        "subscriptions": {},
    }
    problems = []
    for name, table in SUBSCRIPTIONS.items():
        rows = records.rows(table)
        counted = Counter(seq for seq, *_ in rows)
        twice = sorted(seq for seq, n in counted.items() if n > 1)
        by_victim = {seq for seq, _, who, _ in rows if who == pid}
        report["subscriptions"][name] = {
            "deliveries": len(rows),
            "duplicates": len(twice),
            "duplicated": {seq: [r[1:] for r in rows if r[0] == seq] for seq in twice},
            "redelivered_without_duplicate": sum(1 for r in rows if r[3] > 1 and counted[r[0]] == 1),
            "final_depth": final[name],
        }
        missing = sorted(set(range(COUNT)) - set(counted))
        if missing:
            problems.append(f"{name}: {len(missing)} never delivered: {missing[:20]}")
        if set(counted) - set(range(COUNT)):
            problems.append(f"{name}: made-up numbers {sorted(set(counted) - set(range(COUNT)))[:20]}")
        if not_around_kill := [seq for seq in twice if seq not in by_victim]:
            problems.append(f"{name}: delivered twice though the killed server never had them: {not_around_kill[:20]}")
        if name == "ordered" and (wrong := out_of_order(first_deliveries(rows))):
            problems.append(f"ordered: {len(wrong)} pairs first-delivered out of publish order: {wrong[:10]}")
    written = tmp_path / f"duplicates-{report['odb']}.json"
    written.write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k != "subscriptions"}
    print(f"\n{json.dumps(summary)}")
    for name, figures in report["subscriptions"].items():
        shown = dict(list(figures["duplicated"].items())[:10])
        print(
            f"{name}: {figures['deliveries']} deliveries, {figures['duplicates']} duplicates"
            f" ({figures['redelivered_without_duplicate']} more redelivered before being recorded); first ones"
            f" (server, pid, attempt): {shown}"
        )
    print(f"report: {written}")
    assert not problems, "\n".join(problems)
