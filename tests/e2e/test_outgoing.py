"""Outgoing connections as a user meets them: a two-server cluster in subprocesses, real upstreams.

Connections are defined and changed through the admin API while the servers run; services reach them as
``self.out.<kind>[name]`` and are called through ``POST /splice/admin/invoke`` on a chosen server. The REST
upstreams are HTTP servers in threads of this process (``tests/e2e/upstream.py``); SQL, Redis and AMQP are the
machine's PostgreSQL, MariaDB, Redis and RabbitMQ, with random table, key and queue names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import redis
import sqlalchemy

from tests.conftest import Cluster, free_port, make_cluster, running, splice
from tests.e2e.upstream import upstream

SERVICES = (Path(__file__).parent / "outgoing_services.py").read_text()
BOTH_FACES = ("out.get", "out.aget")
TOKEN = "t0ken-of-the-upstream"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One started two-server cluster (SQLite ODB, HTTP bus) for the module, with SERVICES deployed."""
    with running(make_cluster(tmp_path_factory.mktemp("outgoing") / "cluster", servers=2)) as made:
        answer = admin(made, "POST", "/deploy", json={"modules": [{"path": "shop/out.py", "source": SERVICES}]})
        assert answer.status_code == 200, answer.text
        yield made


def admin(cluster: Cluster, method: str, path: str, server: int = 0, **options: Any) -> httpx.Response:
    """An admin API call on server ``server`` (0-based)."""
    url = f"{cluster.urls[server]}/splice/admin{path}"
    headers = {"Authorization": f"Bearer {cluster.token}"}
    return httpx.request(method, url, headers=headers, timeout=60, **options)


def invoke(cluster: Cluster, server: int, service: str, payload: Any, status: int = 200) -> dict[str, Any]:
    """``service`` invoked on server ``server``: the whole answer (``cid``, ``payload``; ``error`` if it failed)."""
    answer = admin(cluster, "POST", "/invoke", server, json={"service": service, "payload": payload})
    assert answer.status_code == status, answer.text
    result: dict[str, Any] = answer.json()
    return result


def define(cluster: Cluster, body: dict[str, Any], server: int = 0) -> dict[str, Any]:
    answer = admin(cluster, "POST", "/outgoing", server, json=body)
    assert answer.status_code == 201, answer.text
    assert [s["status"] for s in answer.json()["servers"]] == ["deployed", "deployed"], answer.text
    result: dict[str, Any] = answer.json()
    return result


def change(cluster: Cluster, body: dict[str, Any], server: int = 0) -> dict[str, Any]:
    answer = admin(cluster, "PUT", f"/outgoing/{body['name']}", server, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def remove(cluster: Cluster, *names: str) -> None:
    for name in names:
        admin(cluster, "DELETE", f"/outgoing/{name}")


def pids(cluster: Cluster) -> list[int]:
    return [int((cluster.directory / f"server{i}" / "server.pid").read_text()) for i in (1, 2)]


def get(cluster: Cluster, server: int, service: str, connection: str, path: str = "/tag.txt") -> dict[str, Any]:
    return invoke(cluster, server, service, {"connection": connection, "path": path})


def test_a_rest_address_changed_at_run_time_applies_on_every_server_when_the_put_answers(two: Cluster) -> None:
    with upstream("first") as first, upstream("second") as second:
        before = pids(two)
        define(two, {"name": "up", "kind": "rest", "address": first.url, "token": TOKEN})
        try:
            for server in (0, 1):
                for service in BOTH_FACES:
                    answer = get(two, server, service, "up")
                    assert answer["payload"] == {"status": 200, "text": "first"}
                    sent = [s for s in first.requests("/tag.txt") if s.headers.get("x-splice-cid") == answer["cid"]]
                    assert len(sent) == 1, (answer["cid"], first.seen)
                    assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"

            # Changed through the other server, without the token: the stored one is kept.
            changed = change(two, {"name": "up", "kind": "rest", "address": second.url}, server=1)
            assert [(s["server"], s["status"]) for s in changed["servers"]] == [
                ("server2", "deployed"),
                ("server1", "deployed"),
            ]
            assert changed["outgoing"]["address"] == second.url
            assert changed["outgoing"]["token"] == "***"
            # Applied everywhere by the time the PUT answers: the very next call, on either server, goes there.
            for server in (0, 1):
                for service in BOTH_FACES:
                    answer = get(two, server, service, "up")
                    assert answer["payload"] == {"status": 200, "text": "second"}
                    sent = [s for s in second.requests("/tag.txt") if s.headers.get("x-splice-cid") == answer["cid"]]
                    assert [s.headers["authorization"] for s in sent] == [f"Bearer {TOKEN}"]
            assert len(first.requests("/tag.txt")) == 4
            assert pids(two) == before
        finally:
            remove(two, "up")


def test_a_call_in_flight_finishes_on_the_old_address_while_new_calls_go_to_the_new_one(two: Cluster) -> None:
    with upstream("old") as old, upstream("new") as new:
        spec = {"name": "moving", "kind": "rest", "address": old.url, "timeout": 60.0, "retries": 0}
        define(two, spec)
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                # One slow call on each server: def handle on server1, async def handle on server2.
                slow = [pool.submit(get, two, i, service, "moving", "/slow") for i, service in enumerate(BOTH_FACES)]
                old.wait_for("/slow", 2)
                change(two, {**spec, "address": new.url})
                for server in (0, 1):
                    for service in BOTH_FACES:
                        assert get(two, server, service, "moving")["payload"]["text"] == "new"
                assert not any(call.done() for call in slow)
                old.release()
                finished = [call.result(timeout=60)["payload"] for call in slow]
            assert finished == [{"status": 200, "text": "slow from old"}] * 2
            # Neither slow call was retried (retries 0): each went out once, on the client it started with.
            assert len(old.requests("/slow")) == 2
            assert old.requests("/tag.txt") == []
        finally:
            remove(two, "moving")


@pytest.mark.parametrize(
    ("address", "ours"),
    [
        (POSTGRES, "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        (MARIADB, "mysql+pymysql://root@127.0.0.1:3306/test"),
    ],
    ids=["postgresql", "mariadb"],
)
def test_sql_connections_give_an_engine_in_def_and_an_async_engine_in_async_def(
    two: Cluster, address: str, ours: str
) -> None:
    define(two, {"name": "crm", "kind": "sql", "address": address})
    tables = [f"splice_out_{secrets.token_hex(4)}" for _ in range(2)]
    engine = sqlalchemy.create_engine(ours)
    try:
        for server, (service, table) in enumerate(zip(("out.sql", "out.asql"), tables, strict=True)):
            label = f"label {table}"
            answer = invoke(two, server, service, {"connection": "crm", "table": table, "label": label})
            assert answer["payload"] == [label]
            with engine.connect() as conn:  # really in the database, seen from outside the cluster
                assert conn.execute(sqlalchemy.text(f"SELECT label FROM {table}")).scalar_one() == label
    finally:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
        remove(two, "crm")


def test_redis_set_and_get_through_the_connection(two: Cluster) -> None:
    define(two, {"name": "cache", "kind": "redis", "address": "redis://127.0.0.1:6379/0"})
    keys = [f"splice:out:{secrets.token_hex(6)}" for _ in range(2)]
    ours = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        for server, (service, key) in enumerate(zip(("out.cache", "out.acache"), keys, strict=True)):
            value = f"value of {key}"
            assert invoke(two, server, service, {"connection": "cache", "key": key, "value": value})["payload"] == value
            assert ours.get(key) == value.encode()
    finally:
        ours.delete(*keys)
        ours.close()
        remove(two, "cache")


async def test_amqp_publish_returns_after_the_confirm_with_the_cid_in_the_message(two: Cluster) -> None:
    define(two, {"name": "mq", "kind": "amqp", "address": "amqp://guest@127.0.0.1:5672/", "password": "guest"})
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"splice-out-{secrets.token_hex(4)}", auto_delete=False)
        try:
            for server, service in enumerate(("out.publish", "out.apublish")):
                body = {"order": secrets.token_hex(4), "via": service}
                payload = {"connection": "mq", "queue": queue.name, "body": body}
                answer = await asyncio.to_thread(invoke, two, server, service, payload)
                assert answer["payload"] == "published"
                # Confirmed means queued: the message is there at once.
                message = await queue.get(no_ack=True, fail=False)
                assert message is not None, f"{service}: nothing in {queue.name} after the publish returned"
                assert json.loads(message.body) == body
                assert message.headers["x-splice-cid"] == answer["cid"]
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
        await asyncio.to_thread(remove, two, "mq")


SECRET = "Zq8-distinctive-s3cret"
SECRET_FIELDS = ("password", "key", "token")


def test_secrets_never_leave_the_cluster_in_clear(two: Cluster) -> None:
    said: list[str] = []

    def call(method: str, path: str, server: int = 0, **options: Any) -> httpx.Response:
        answer = admin(two, method, path, server, **options)
        said.append(answer.text)
        return answer

    with upstream("guarded", token=f"{SECRET}-rest") as guarded:
        bodies = [
            {"name": "guarded", "kind": "rest", "address": guarded.url, "token": f"{SECRET}-rest"},
            {"name": "vault", "kind": "sql", "address": POSTGRES, "password": f"{SECRET}-sql"},
            {"name": "mq_wrong", "kind": "amqp", "address": "amqp://guest@127.0.0.1:5672/", "password": f"{SECRET}-mq"},
            {"name": "cache_pw", "kind": "redis", "address": "redis://127.0.0.1:6379/0", "password": f"{SECRET}-redis"},
        ]
        names = [body["name"] for body in bodies]
        key = f"splice:out:{secrets.token_hex(6)}"
        try:
            for body in bodies:
                assert call("POST", "/outgoing", json=body).status_code == 201, said[-1]
            assert call("GET", "/outgoing").status_code == 200
            for body in bodies:
                shown = call("GET", f"/outgoing/{body['name']}").json()
                assert {k: v for k, v in shown.items() if v == "***"} == {k: "***" for k in body if k in SECRET_FIELDS}
            pings = {name: call("POST", f"/outgoing/{name}/ping", 1).json() for name in names}
            assert pings["guarded"]["ok"], pings
            assert pings["vault"]["ok"], pings  # trust authentication: PostgreSQL does not ask for the password
            assert not pings["mq_wrong"]["ok"], pings
            # This Redis has no password and redis-py shrugs off the refused AUTH: cache_pw works; only leaks matter.
            assert get(two, 0, "out.get", "guarded", "/private")["payload"] == {"status": 200, "text": "guarded"}

            # A wrong token: the upstream still answers (401), so the ping says reachable; a call gets the 401.
            assert call("PUT", "/outgoing/guarded", json={**bodies[0], "token": f"{SECRET}-wrong"}).status_code == 200
            ping = call("POST", "/outgoing/guarded/ping").json()
            assert ping["ok"], ping
            assert all("HTTP 401" in s["detail"] for s in ping["servers"]), ping
            private = {"connection": "guarded", "path": "/private"}
            for service in BOTH_FACES:
                answer = call("POST", "/invoke", 1, json={"service": service, "payload": private})
                assert answer.json()["payload"]["status"] == 401, answer.text
            for server, service in enumerate(("out.apublish", "out.publish")):
                payload = {"connection": "mq_wrong", "queue": "nowhere", "body": {}}
                failed = call("POST", "/invoke", server, json={"service": service, "payload": payload})
                assert failed.json()["error"]["code"] == "service_failed", failed.text
            for server, service in enumerate(("out.cache", "out.acache")):
                payload = {"connection": "cache_pw", "key": key, "value": "x"}
                call("POST", "/invoke", server, json={"service": service, "payload": payload})
            said.extend(cli_outputs(two, names))
            assert_sealed_in_the_odb(two.directory, names)
            assert_nowhere_in_clear(two.directory, SECRET.encode())
        finally:
            for name in names:
                call("DELETE", f"/outgoing/{name}")
            with contextlib.closing(redis.Redis()) as ours:
                ours.delete(key)

        assert [s.headers["authorization"] for s in guarded.requests("/private")] == [
            f"Bearer {SECRET}-rest",
            f"Bearer {SECRET}-wrong",
            f"Bearer {SECRET}-wrong",
        ]
    assert [text for text in said if SECRET in text] == []
    assert_nowhere_in_clear(two.directory, SECRET.encode())
    assert stat.S_IMODE((two.directory / "secret-key").stat().st_mode) == 0o600


def cli_outputs(cluster: Cluster, names: list[str]) -> list[str]:
    """What ``splice outgoing list/show/ping`` print, when this checkout has that command."""
    if splice("outgoing", "--help", check=False).returncode != 0:
        return []
    where = ("--cluster", str(cluster.directory))
    # One of each command; a ping each of a reachable upstream (401) and of a refused login (its error shown).
    commands = [("list", *where), ("list", "--json", *where), ("show", "guarded", *where)]
    commands += [("ping", "guarded", *where), ("ping", "mq_wrong", *where)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda args: splice("outgoing", *args, check=False), commands))
    outputs = [run.stdout + run.stderr for run in runs]
    assert all(name in outputs[0] for name in names), outputs[0]
    return outputs


def assert_sealed_in_the_odb(directory: Path, names: list[str]) -> None:
    """Each connection's secrets are in the ODB (so that finding none of them in clear there means something)."""
    odb = f"file:{directory / 'odb.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(odb, uri=True)) as db:
        stored = dict(db.execute("SELECT name, secrets FROM outgoing_connections").fetchall())
    assert all(stored.get(name) for name in names), stored


def assert_nowhere_in_clear(directory: Path, secret: bytes) -> None:
    """No file of the cluster directory (server logs, the ODB and its WAL, pid files...) holds ``secret``."""
    files = [path for path in directory.rglob("*") if path.is_file()]
    logs = [path for path in files if path.parent.name == "logs" and path.parent.parent.name.startswith("server")]
    assert any(b"rest guarded: GET" in path.read_bytes() for path in logs), [str(p) for p in logs]
    assert directory / "odb.sqlite" in files
    assert [str(path) for path in files if secret in path.read_bytes()] == []


def test_an_unknown_connection_names_the_known_ones_and_the_closest(two: Cluster) -> None:
    define(two, {"name": "billing", "kind": "rest", "address": "http://127.0.0.1:9"})
    define(two, {"name": "billing_db", "kind": "sql", "address": POSTGRES})
    try:
        for server, service in enumerate(BOTH_FACES):
            failed = invoke(two, server, service, {"connection": "biling", "path": "/"}, status=500)
            assert failed["error"]["code"] == "service_failed"
            message = failed["error"]["message"]
            assert "no rest connection named 'biling'" in message
            assert "known rest connections: billing)" in message
            assert "did you mean 'billing'?" in message
            other = invoke(two, server, service, {"connection": "billing_db", "path": "/"}, status=500)
            assert "is of kind sql, not rest: use self.out.sql['billing_db']" in other["error"]["message"]
    finally:
        remove(two, "billing", "billing_db")


def test_ping_answers_for_every_live_server(two: Cluster) -> None:
    with upstream("pinged") as pinged:
        define(two, {"name": "pinged", "kind": "rest", "address": pinged.url})
        define(two, {"name": "closed", "kind": "rest", "address": f"http://127.0.0.1:{free_port()}"})
        try:
            for server in (0, 1):
                good = admin(two, "POST", "/outgoing/pinged/ping", server).json()
                assert good["ok"] is True
                assert sorted(s["server"] for s in good["servers"]) == ["server1", "server2"]
                assert all(s["ok"] and "HTTP 200" in s["detail"] for s in good["servers"]), good
                bad = admin(two, "POST", "/outgoing/closed/ping", server).json()
                assert bad["ok"] is False
                assert sorted(s["server"] for s in bad["servers"]) == ["server1", "server2"]
                assert all(not s["ok"] and s["error"] for s in bad["servers"]), bad
            assert len(pinged.requests("/")) == 4
            assert admin(two, "POST", "/outgoing/nothing/ping").status_code == 404
        finally:
            remove(two, "pinged", "closed")
