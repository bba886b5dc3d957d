"""While a server is being debugged, an ``async def handle`` runs on an event loop of its own (``Invoker.own_loop``):
a breakpoint paused in it holds up only its own request, and what it awaits of the server's loop (nested calls,
outgoing connections, caches, pub/sub, jobs) still works from there; timeouts still answer 504 and cancel it.

The first test is what a user sees: a real server with debugpy, a DAP client pausing an async service that
awaits a nested call and an outgoing REST call, while the ping and another async service answer. The second runs
a real server in-process with ``own_loop`` on, as debugging turns it on, and goes through each part a service
awaits; the third sends on the call's WebSocket and broadcasts from the service's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import sqlalchemy

from splice.server.core.invoker import Invoker
from tests.conftest import Cluster, InProcess, running, splice
from tests.dap import attached
from tests.e2e.test_debug import ONLY_ITS_THREAD, debug_cluster, deploy
from tests.e2e.upstream import upstream
from tests.server.http.test_websocket import (
    Live,
    ask,
    live,  # noqa: F401 (the fixture)
)
from tests.server.http.test_websocket import client as ws_client

PAUSED = textwrap.dedent(
    """
    from splice.server import Service


    class Paused(Service):
        name = "dbg.paused"

        async def handle(self):
            inner = await self.ainvoke("dbg.inner", {"n": 1})
            answer = await self.out.rest["up"].get("/tag.txt")
            tag = answer.text
            self.response.payload = {"inner": inner, "tag": tag}


    class Inner(Service):
        name = "dbg.inner"

        async def handle(self):
            self.response.payload = {"twice": self.request.payload["n"] * 2}


    class Other(Service):
        name = "dbg.other"

        async def handle(self):
            self.response.payload = {"other": True}
    """
)
PAUSED_LINE = 12  # self.response.payload = ... (inner and tag are known by then)


def admin(cluster: Cluster, method: str, path: str, **options: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    return httpx.request(method, f"{cluster.url}/splice/admin{path}", headers=headers, timeout=30, **options)


def test_a_paused_async_service_holds_up_only_its_own_request(tmp_path: Path) -> None:
    project = tmp_path / "project"
    file = project / "dbg" / "paused.py"
    file.parent.mkdir(parents=True)
    file.write_text(PAUSED)
    assert file.read_text().splitlines()[PAUSED_LINE - 1].strip().startswith("self.response.payload")
    with upstream("tagged") as up, running(debug_cluster(tmp_path)) as cluster:
        deploy(cluster, project, file)
        created = admin(cluster, "POST", "/outgoing", json={"name": "up", "kind": "rest", "address": up.url})
        assert created.status_code == 201, created.text
        for name, service in (("paused", "dbg.paused"), ("other", "dbg.other")):
            splice("channel", "create", "--cluster", str(cluster.directory), "--name", name, "--path", f"/{name}",
                   "--service", service)  # fmt: skip
        splice("debug", "enable", str(cluster.directory))
        (point,) = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)["attach_points"]
        mapping = [{"localRoot": str(project), "remoteRoot": point["remote_root"]}]
        with (
            attached(point["host"], point["port"], mapping, {str(file): [PAUSED_LINE]}, ONLY_ITS_THREAD) as (dap, _),
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            call = pool.submit(httpx.get, f"{cluster.url}/paused", timeout=60)
            stopped = dap.event("stopped", timeout=30)
            assert stopped["reason"] == "breakpoint"
            frame = dap.locals_of_top_frame(stopped["threadId"])
            assert frame["tag"] == repr("tagged")  # the outgoing call went out (on the server's loop) and came back
            assert frame["inner"] == repr({"twice": 2})  # so did the nested call
            # Paused: its own request waits, and only that one.
            for _ in range(5):
                assert httpx.get(f"{cluster.url}/splice/ping", timeout=2).status_code == 200
                assert httpx.get(f"{cluster.url}/other", timeout=2).json() == {"other": True}
            assert admin(cluster, "POST", "/invoke", json={"service": "dbg.inner", "payload": {"n": 4}}).json()[
                "payload"
            ] == {"twice": 8}
            assert not call.done()
            dap.resume(stopped["threadId"])
            answer = call.result(timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"inner": {"twice": 2}, "tag": "tagged"}
        assert len(up.requests("/tag.txt")) == 1


EVERY_PART = textwrap.dedent(
    """
    import asyncio
    import threading

    from splice.server import Service
    from splice.server.core.context import current_cid


    class Inner(Service):
        name = "own.inner"

        async def handle(self):
            self.cache["default"].set(f"inner:{self.request.payload['n']}", threading.current_thread().name)
            self.response.payload = {"twice": self.request.payload["n"] * 2}


    class Outer(Service):
        name = "own.outer"

        async def handle(self):
            cache = self.cache["default"]
            await cache.aset("k", 7)
            rest = await self.out.rest["up"].get("/tag.txt")
            async with self.out.rest["up"].stream("GET", "/tag.txt") as streamed:
                body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
            published = await self.apublish("own.events", {"n": 1})
            job = await self.schedule.acreate("own-job", "own.inner", in_=3600, payload={"n": 9})
            self.response.payload = {
                "thread": threading.current_thread().name,
                "cid": current_cid.get() == self.cid,
                "inner": await self.ainvoke("own.inner", {"n": 1}),
                "cached": await cache.aget("k"),
                "rest": [rest.status_code, rest.text, body.decode()],
                "published": published.id is not None,
                "job": job["name"],
                "spawned": self.invoke_async("own.inner", {"n": 3}),
                "jobs": [j["name"] for j in [await self.schedule.aget("own-job")]],
            }


    class Slow(Service):
        name = "own.slow"
        timeout = 0.5

        async def handle(self):
            try:
                await self.out.rest["up"].get("/slow")
            except asyncio.CancelledError:
                self.cache["default"].set("slow", "cancelled")
                raise
    """
)


async def soon(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``check`` without blocking the loop the in-process server runs on."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


@pytest.fixture
def own_loop() -> Iterator[None]:
    """What a debugger turns on for the whole process (``Debugger.enable``)."""
    Invoker.own_loop = True
    try:
        yield
    finally:
        Invoker.own_loop = False


async def test_on_its_own_loop_an_async_service_reaches_everything_of_the_server(
    own_loop: None, sqlite_server: InProcess
) -> None:
    made = sqlite_server
    module = {"path": "own.py", "source": EVERY_PART}
    deployed = await made.admin.post("/splice/admin/deploy", json={"modules": [module]})
    assert deployed.status_code == 200, deployed.text
    assert (await made.admin.post("/splice/admin/topics", json={"name": "own.events"})).status_code == 201
    with upstream("tagged") as up:
        connection = {"name": "up", "kind": "rest", "address": up.url}
        defined = await made.admin.post("/splice/admin/outgoing", json=connection)
        assert defined.status_code == 201, defined.text
        called = await made.admin.post("/splice/admin/invoke", json={"service": "own.outer"}, timeout=30)
        assert called.status_code == 200, called.text
        payload = called.json()["payload"]
        assert payload["thread"] != threading.main_thread().name  # a worker thread, on its own loop
        assert payload["cid"] is True
        assert payload["inner"] == {"twice": 2}
        assert payload["cached"] == 7
        assert payload["rest"] == [200, "tagged", "tagged"]
        assert payload["published"] is True
        assert payload["job"] == payload["jobs"][0] == "own-job"
        caches = made.runtime.caches  # type: ignore[attr-defined]
        assert await soon(lambda: caches["default"].get("inner:3") is not None)  # the background call ran
        assert caches["default"].get("inner:1") != threading.main_thread().name

        # A timeout answers 504 at once and cancels the service on its own loop, and what it awaited.
        timed_out = await made.admin.post("/splice/admin/invoke", json={"service": "own.slow"}, timeout=30)
        assert timed_out.status_code == 504, timed_out.text
        assert await soon(lambda: caches["default"].get("slow") == "cancelled")
        up.release()


WS_SERVICE = textwrap.dedent(
    """
    import threading

    from splice.server import Service


    class Talk(Service):
        name = "own.talk"

        async def handle(self):
            await self.websocket.asend({"early": threading.current_thread().name})
            reached = await self.websockets.abroadcast("ownws", {"shout": self.websocket.id})
            self.response.payload = {"reached": reached, "channel": self.websocket.channel}
    """
)


async def test_on_its_own_loop_an_async_service_sends_on_its_websocket_and_broadcasts(
    own_loop: None,
    live: Live,  # noqa: F811 (the fixture imported above)
) -> None:
    module = {"path": "talk.py", "source": WS_SERVICE}
    deployed = await live.admin.post("/splice/admin/deploy", json={"modules": [module]})
    assert deployed.status_code == 200, deployed.text
    await live.channel("ownws", "/ownws", "own.talk")
    async with ws_client(live, "/ownws") as ws:
        early = await ask(ws, {"hi": 1})
        assert early["early"] != threading.main_thread().name  # sent from the service's own loop, in a worker thread
        shout = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert set(shout) == {"shout"}
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer == {"reached": 1, "channel": "ownws"}


OUTGOING = (Path(__file__).parent / "outgoing_services.py").read_text()


async def test_on_its_own_loop_an_async_service_uses_sql_redis_and_amqp_connections(
    own_loop: None, sqlite_server: InProcess
) -> None:
    """The async clients of ``self.out`` were made on the server's loop: each call of theirs runs there."""
    made = sqlite_server
    deployed = await made.admin.post("/splice/admin/deploy", json={"modules": [{"path": "out.py", "source": OUTGOING}]})
    assert deployed.status_code == 200, deployed.text
    definitions = [
        {"name": "crm", "kind": "sql", "address": "postgresql+asyncpg://postgres@127.0.0.1:5432/test"},
        {"name": "kv", "kind": "redis", "address": "redis://127.0.0.1:6379/0"},
        {"name": "mq", "kind": "amqp", "address": "amqp://guest@127.0.0.1:5672/", "password": "guest"},
    ]
    for body in definitions:
        answer = await made.admin.post("/splice/admin/outgoing", json=body)
        assert answer.status_code == 201, answer.text
    table = f"splice_own_{secrets.token_hex(4)}"
    key = f"splice:own:{secrets.token_hex(6)}"
    rabbit = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    queue = await (await rabbit.channel()).declare_queue(f"splice-own-{secrets.token_hex(4)}", auto_delete=True)
    calls = [
        ("out.asql", {"connection": "crm", "table": table, "label": "on its own loop"}, ["on its own loop"]),
        ("out.acache", {"connection": "kv", "key": key, "value": "kept"}, "kept"),
        ("out.apublish", {"connection": "mq", "queue": queue.name, "body": {"n": 1}}, "published"),
    ]
    try:
        for service, payload, expected in calls:
            answer = await made.admin.post("/splice/admin/invoke", json={"service": service, "payload": payload})
            assert answer.status_code == 200, answer.text
            assert answer.json()["payload"] == expected
        message = await queue.get(no_ack=True, fail=False)
        assert message is not None
        assert json.loads(message.body) == {"n": 1}
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await rabbit.close()
        engine = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
