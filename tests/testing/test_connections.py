"""splice.testing: a service's outgoing connections in unit tests, real (a test double, SQLite, Redis, RabbitMQ) or
stubbed (recorded REST answers, any object as a client)."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from splice.server import Service, ServiceFailed
from splice.server.core.outgoing import InvalidConnection, UnknownConnection
from splice.testing import ServiceHarness, UnstubbedRequest
from tests.e2e.upstream import upstream

# -- services under test -------------------------------------------------------------------------------------


class Tag(Service):
    name = "billing.tag"

    def handle(self) -> None:
        answer = self.out.rest["billing"].get("/tag.txt")
        self.response.payload = {"status": answer.status_code, "text": answer.text, "cid": self.cid}


class AsyncTag(Service):
    name = "billing.async-tag"

    async def handle(self) -> None:
        answer = await self.out.rest["billing"].get("/tag.txt")
        self.response.payload = {"status": answer.status_code, "text": answer.text, "cid": self.cid}


class Invoice(Service):
    name = "billing.invoice"

    async def handle(self) -> None:
        answer = await self.out.rest["billing"].get(f"/invoices/{self.request.payload['id']}")
        self.response.payload = {"status": answer.status_code, "invoice": answer.json(), "cid": self.cid}


class Pay(Service):
    name = "billing.pay"

    def handle(self) -> None:
        answer = self.out.rest["billing"].post("/payments", json=self.request.payload)
        answer.raise_for_status()
        self.response.payload = answer.json()


class Customers(Service):
    name = "crm.add-customer"

    def handle(self) -> None:
        from sqlalchemy import text

        with self.out.sql["crm"].begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS customers (name TEXT)"))
            conn.execute(text("INSERT INTO customers VALUES (:name)"), {"name": self.request.payload})
            self.response.payload = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()


class AsyncCustomers(Service):
    name = "crm.names"

    async def handle(self) -> None:
        from sqlalchemy import text

        async with self.out.sql["crm"].connect() as conn:
            rows = await conn.execute(text("SELECT name FROM customers ORDER BY name"))
            self.response.payload = [row.name for row in rows]


class Remember(Service):
    name = "cache.remember"

    def handle(self) -> None:
        cache = self.out.redis["cache"]
        cache.set(self.request.payload["key"], self.request.payload["value"])
        self.response.payload = cache.get(self.request.payload["key"])


class AsyncRemember(Service):
    name = "cache.async-remember"

    async def handle(self) -> None:
        cache = self.out.redis["cache"]
        await cache.set(self.request.payload["key"], self.request.payload["value"], ex=60)
        self.response.payload = (await cache.get(self.request.payload["key"])).decode()


class Announce(Service):
    name = "orders.announce"

    async def handle(self) -> None:
        self.response.payload = await self.out.amqp["broker"].publish({"order": 7}, routing_key=self.request.payload)


class Misspelt(Service):
    name = "billing.misspelt"

    def handle(self) -> None:
        self.out.rest["biling"].get("/")


class WrongKind(Service):
    name = "billing.wrong-kind"

    def handle(self) -> None:
        self.out.sql["billing"]


def harness(*services: type[Service]) -> ServiceHarness:
    made = ServiceHarness()
    made.add(*services)
    return made


# -- real connections ----------------------------------------------------------------------------------------


def test_a_rest_connection_to_a_real_test_double_in_def_and_async_def_handle() -> None:
    services = harness(Tag, AsyncTag)
    with upstream("billing-double", token="t0k") as double:
        services.connect("billing", kind="rest", address=double.url, token="t0k", timeout=5)
        blocking = services.invoke("billing.tag")
        asynchronous = services.invoke("billing.async-tag")
        seen = double.requests("/tag.txt")
    assert [blocking["text"], asynchronous["text"]] == ["billing-double", "billing-double"]
    assert [s.headers["authorization"] for s in seen] == ["Bearer t0k", "Bearer t0k"]
    assert [s.headers["x-splice-cid"] for s in seen] == [blocking["cid"], asynchronous["cid"]]
    assert not services.connections.opened()  # closed when each call ended


async def test_an_async_test_reaches_the_double_too() -> None:
    services = harness(AsyncTag)
    with upstream("billing-double") as double:
        services.connect("billing", kind="rest", address=double.url)
        first = await services.ainvoke("billing.async-tag")
        second = await services.ainvoke("billing.async-tag")
    assert [first["status"], second["status"]] == [200, 200]
    assert first["cid"] != second["cid"]


def test_sql_against_sqlite_in_tmp_path(tmp_path: Path) -> None:
    services = harness(Customers, AsyncCustomers)
    services.connect("crm", kind="sql", address=f"sqlite:///{tmp_path / 'crm.db'}", pool_size=1)
    assert services.invoke("crm.add-customer", "Grace") == 1
    assert services.invoke("crm.add-customer", "Ada") == 2
    assert services.invoke("crm.names") == ["Ada", "Grace"]
    assert (tmp_path / "crm.db").exists()


async def test_redis_against_the_test_redis() -> None:
    import redis.asyncio

    key = f"splice-testing-{uuid.uuid4().hex}"
    services = harness(AsyncRemember)
    services.connect("cache", kind="redis", address="redis://127.0.0.1:6379/0")
    try:
        assert await services.ainvoke("cache.async-remember", {"key": key, "value": "v1"}) == "v1"
    finally:
        client = redis.asyncio.Redis()
        await client.delete(key)
        await client.aclose()


async def test_amqp_against_the_test_rabbitmq() -> None:
    import aio_pika

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"splice-testing-{uuid.uuid4().hex}", exclusive=True)
        services = harness(Announce)
        services.connect("broker", kind="amqp", address="amqp://guest@127.0.0.1:5672/", password="guest")
        message_id = await services.ainvoke("orders.announce", queue.name)
        message = await queue.get(timeout=10)  # confirmed by the broker, so already queued
        assert message is not None
        assert (json.loads(message.body), message.message_id) == ({"order": 7}, message_id)
        await message.ack()
    finally:
        await connection.close()


# -- stubs ---------------------------------------------------------------------------------------------------


def test_a_stubbed_rest_answer_and_the_request_the_service_sent() -> None:
    services = harness(Invoice)
    answers = {"GET /invoices/7": {"status": 200, "json": {"id": 7, "total": 12.5}}}
    services.stub_rest("billing", answers, address="https://billing.example.com/api", token="t0k", headers={"X-A": "b"})
    answer = services.invoke("billing.invoice", {"id": 7})
    assert answer["invoice"] == {"id": 7, "total": 12.5}
    (sent,) = services.requests("billing")
    assert (sent.method, str(sent.url)) == ("GET", "https://billing.example.com/api/invoices/7")
    assert (sent.headers["X-Splice-CID"], sent.headers["Authorization"], sent.headers["X-A"]) == (
        answer["cid"],
        "Bearer t0k",
        "b",
    )

    with pytest.raises(ServiceFailed) as caught:
        services.invoke("billing.invoice", {"id": 8})
    assert isinstance(caught.value.error, UnstubbedRequest)
    assert str(caught.value.error) == (
        "outgoing connection 'billing': no stubbed answer for GET /invoices/8 (stubbed: GET /invoices/7)"
    )
    assert [r.url.path for r in services.requests("billing")] == ["/api/invoices/7", "/api/invoices/8"]


def test_a_stub_handler_sees_each_request_in_a_blocking_service() -> None:
    services = harness(Pay)

    def billing(request: httpx.Request) -> dict[str, Any]:
        paid = json.loads(request.content)
        if paid["amount"] <= 0:
            return {"status": 422, "json": {"error": "nothing to pay"}}
        return {"status": 201, "json": {"paid": paid["amount"]}, "headers": {"Location": "/payments/1"}}

    services.stub_rest("billing", billing)
    assert services.invoke("billing.pay", {"amount": 5}) == {"paid": 5}
    with pytest.raises(ServiceFailed, match="422 Unprocessable"):
        services.invoke("billing.pay", {"amount": 0})
    assert [json.loads(r.content) for r in services.requests("billing")] == [{"amount": 5}, {"amount": 0}]


def test_a_query_in_a_stubbed_route_matches_that_query_only() -> None:
    services = harness(Tag)
    services.stub_rest(
        "billing",
        {
            "GET /tag.txt?v=2": {"text": "two"},
            "GET /tag.txt": httpx.Response(200, text="plain"),
        },
    )
    assert services.invoke("billing.tag")["text"] == "plain"
    assert services.invoke("billing.tag")["text"] == "plain"  # the same Response answers again


class FakeRedis:
    """What a test may hand in: here, a dict with Redis's two verbs."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def get(self, key: str) -> Any:
        return self.data.get(key)


def test_a_stubbed_redis_client_is_what_the_service_gets() -> None:
    services = harness(Remember)
    fake = FakeRedis()
    services.stub_connection("cache", kind="redis", client=fake)
    assert services.invoke("cache.remember", {"key": "k", "value": 42}) == 42
    assert fake.data == {"k": 42}


# -- mistakes ------------------------------------------------------------------------------------------------


def test_an_unknown_name_raises_the_servers_unknown_connection() -> None:
    services = harness(Misspelt, WrongKind)
    services.stub_rest("billing", {})
    with pytest.raises(ServiceFailed) as caught:
        services.invoke("billing.misspelt")
    assert isinstance(caught.value.error, UnknownConnection)
    assert str(caught.value.error) == (
        "no rest connection named 'biling' (known rest connections: billing); did you mean 'billing'?"
    )
    with pytest.raises(ServiceFailed) as caught:
        services.invoke("billing.wrong-kind")
    assert (
        str(caught.value.error)
        == "outgoing connection 'billing' is of kind rest, not sql: use self.out.rest['billing']"
    )
    assert services.connections.names("rest") == ["billing"]


@pytest.mark.parametrize(
    ("define", "expected"),
    [
        (lambda h: h.connect("x", kind="soap", address="http://x"), "outgoing connection 'x': no kind 'soap'"),
        (
            lambda h: h.connect("x", kind="rest", address="http://x", timeout=-1),
            "outgoing connection 'x': timeout: must be > 0.0, got -1",
        ),
        (lambda h: h.connect("x", kind="rest", address="ftp://x"), "a REST connection's address is an http://"),
        (
            lambda h: h.connect("x", kind="sql", address="sqlite:///x.db", token="t"),
            "outgoing connection 'x': a sql connection takes no token (its secrets: password)",
        ),
        (
            lambda h: h.connect("x", kind="rest", address="http://x", password="p"),
            "outgoing connection 'x': REST connection 'x' has a password but no username",
        ),
        (lambda h: h.stub_rest("x", {"invoices": {}}), "a key is a method and a path, like 'GET /invoices/7'"),
        (lambda h: h.stub_rest("x", {"GET /a": {"jsn": 1}}), "stub_rest('x'), GET /a: unknown jsn"),
        (lambda h: h.stub_rest("x", {"GET /a": {"json": 1, "text": "1"}}), "json and text: give one body"),
        (lambda h: h.stub_rest("x", {"GET /a": 200}), "an answer is an httpx.Response or a dict"),
    ],
)
def test_a_wrong_definition_fails_where_the_test_makes_it(define: Any, expected: str) -> None:
    with pytest.raises((InvalidConnection, ValueError, TypeError)) as caught:
        define(ServiceHarness())
    assert expected in str(caught.value)


def test_only_stubbed_rest_connections_record_requests() -> None:
    services = ServiceHarness()
    services.stub_connection("cache", kind="redis", client=FakeRedis())
    with pytest.raises(ValueError, match="'cache' is not a stubbed REST connection"):
        services.requests("cache")


# -- the README's example ------------------------------------------------------------------------------------


def test_the_readme_example_runs(pytester: pytest.Pytester) -> None:
    """Each ```python block of the README's splice.testing section that starts with ``# <path>`` is that file."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Unit tests of your services", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in section.split("```python\n")[1:]:
        code = block.split("```", 1)[0]
        first, _, rest = code.partition("\n")
        if first.startswith("# ") and first.endswith(".py"):
            files[first[2:].removesuffix(".py")] = textwrap.dedent(rest)
    assert len(files) >= 2, files
    for path in list(files):
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            files.setdefault("/".join(parts[:depth]) + "/__init__", "")
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=sum(code.count("def test_") for code in files.values()))
