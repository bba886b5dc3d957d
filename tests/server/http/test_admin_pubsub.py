"""Pub/sub through the admin API of one in-process server: topics, subscriptions, topic permissions, publishing,
and a subscription's queue (peek, purge, dead letters, replay).

Every change must reach the server's live definitions (``runtime.live``) through ``config_changed``; every refusal
must say what was wrong and where, and name the known ones for a name that does not exist. The round trip of
definitions runs on every ODB backend; the rest on SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from splice.server.runtime import Runtime
from tests.conftest import InProcess, free_port, in_process

ADMIN = "/splice/admin"
TOPICS = f"{ADMIN}/topics"
SUBS = f"{ADMIN}/subscriptions"
PERMISSIONS = f"{ADMIN}/topic-permissions"

SHIP = textwrap.dedent(
    '''
    from splice.server import Service


    class Ship(Service):
        """Takes every message it is given."""

        name = "orders.ship"

        def handle(self):
            self.response.payload = "shipped"


    class Refuse(Service):
        """Fails every message: its deliveries end as dead letters."""

        name = "orders.refuse"

        def handle(self):
            raise ValueError(f"no stock for {self.request.payload!r}")
    '''
)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[InProcess]:
    """A real server (runtime + ASGI app) in-process on SQLite."""
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    async with in_process(directory) as made:
        yield made


def runtime_of(server: InProcess) -> Runtime:
    assert isinstance(server.runtime, Runtime)
    return server.runtime


def error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    message: str = answer.json()["error"]["message"]
    return message


async def ok(call: Any, status: int = 200) -> dict[str, Any]:
    answer: httpx.Response = await call
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def deploy(server: InProcess, source: str = SHIP) -> None:
    await ok(server.admin.post(f"{ADMIN}/deploy", json={"modules": [{"path": "orders.py", "source": source}]}))


# -- definitions, on every backend ------------------------------------------------------------------------


async def test_topics_subscriptions_and_permissions_round_trip(server: InProcess) -> None:
    runtime = runtime_of(server)
    made = await ok(server.admin.post(TOPICS, json={"name": "orders.created", "expiry": 60}), 201)
    assert made["created"] is True
    assert made["topic"] == {
        "name": "orders.created",
        "persistent": True,
        "max_payload": 1048576,
        "max_depth": 100000,
        "expiry": 60.0,
        "idempotency_window": 86400.0,
    }
    assert [s["server"] for s in made["servers"]] == ["server1"]
    assert runtime.live.topics["orders.created"].expiry == 60.0

    sub = await ok(server.admin.post(SUBS, json={"name": "audit", "topic": "orders.created"}), 201)
    assert sub["subscription"]["service"] is None
    assert sub["warnings"] == []
    assert runtime.live.subscriptions["audit"].topic == "orders.created"

    await ok(server.admin.post(f"{ADMIN}/security", json={"name": "shop", "kind": "apikey", "key": "k3y"}), 201)
    granted = await ok(server.admin.put(f"{PERMISSIONS}/shop", json={"publish": ["orders.*"]}))
    assert granted["permission"] == {"security": "shop", "publish": ["orders.*"], "subscribe": []}
    assert granted["created"] is True
    assert runtime.live.permissions["shop"].may("publish", "orders.created")

    listed = await ok(server.admin.get(TOPICS))
    assert [(t["name"], t["subscriptions"]) for t in listed["topics"]] == [("orders.created", ["audit"])]
    assert (await ok(server.admin.get(PERMISSIONS)))["permissions"] == [granted["permission"]]

    assert (await ok(server.admin.delete(f"{PERMISSIONS}/shop")))["deleted"] == "shop"
    assert (await ok(server.admin.delete(f"{SUBS}/audit")))["deleted"] == "audit"
    assert (await ok(server.admin.delete(f"{TOPICS}/orders.created")))["deleted"] == "orders.created"
    assert not runtime.live.topics
    assert not runtime.live.subscriptions
    assert not runtime.live.permissions


# -- topics -----------------------------------------------------------------------------------------------


async def test_a_topic_name_is_taken_once(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    assert error(await sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 409) == (
        "topic 'orders.created' already exists"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "orders created"}, "name"),
        ({"name": "orders..created"}, "name"),
        ({"name": "orders.*"}, "name"),
        ({"name": "a", "max_payload": 17 * 1024 * 1024}, "max_payload"),
        ({"name": "a", "persistent": "yes"}, "persistent"),
        ({"name": "a", "expiry": 0}, "expiry"),
        ({"name": "a", "colour": "red"}, "colour"),
        ({"persistent": True}, "name"),
    ],
)
async def test_a_wrong_topic_is_refused_naming_the_field(sqlite: InProcess, body: dict[str, Any], field: str) -> None:
    answer = await sqlite.admin.post(TOPICS, json=body)
    error(answer, 400)
    assert [p["field"] for p in answer.json()["error"]["problems"]] == [field]


async def test_get_a_topic_with_what_it_feeds(sqlite: InProcess) -> None:
    for name in ("orders.created", "orders.paid", "billing.due"):
        await ok(sqlite.admin.post(TOPICS, json={"name": name}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "all-orders", "topic": "orders.*"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "paid", "topic": "orders.paid"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "everything", "topic": "**"}), 201)
    topic = await ok(sqlite.admin.get(f"{TOPICS}/orders.paid"))
    assert topic["subscriptions"] == ["all-orders", "everything", "paid"]
    assert set(topic) >= {"depth", "oldest_age", "persistent", "max_payload"}
    billing = await ok(sqlite.admin.get(f"{TOPICS}/billing.due"))
    assert billing["subscriptions"] == ["everything"]


async def test_an_unknown_topic_is_refused_naming_the_known_ones(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    expected = "no topic named 'orders.create' (known topics: orders.created); did you mean 'orders.created'?"
    for answer in (
        await sqlite.admin.get(f"{TOPICS}/orders.create"),
        await sqlite.admin.delete(f"{TOPICS}/orders.create"),
        await sqlite.admin.post(f"{TOPICS}/orders.create/publish", json={"data": 1}),
        await sqlite.admin.post(SUBS, json={"name": "s", "topic": "orders.create"}),
    ):
        assert error(answer, 404) == expected
        assert answer.json()["error"]["code"] == "topic_not_found"
    assert error(await sqlite.admin.get(f"{TOPICS}/x"), 404) == "no topic named 'x' (known topics: orders.created)"


async def test_put_changes_a_topic_or_creates_it(sqlite: InProcess) -> None:
    runtime = runtime_of(sqlite)
    made = await ok(sqlite.admin.put(f"{TOPICS}/orders.created", json={"name": "orders.created"}))
    assert made["created"] is True
    body = {"name": "orders.created", "max_payload": 2048, "max_depth": 10}
    changed = await ok(sqlite.admin.put(f"{TOPICS}/orders.created", json=body))
    assert changed["created"] is False
    assert changed["topic"]["max_payload"] == 2048
    assert runtime.live.topics["orders.created"].max_depth == 10
    other = await sqlite.admin.put(f"{TOPICS}/orders.paid", json={"name": "orders.created"})
    assert error(other, 422) == "the body names topic 'orders.created', the path 'orders.paid': they must agree"


async def test_a_topic_read_by_a_pull_subscription_stays_persistent(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "audit", "topic": "orders.created"}), 201)
    body = {"name": "orders.created", "persistent": False}
    assert error(await sqlite.admin.put(f"{TOPICS}/orders.created", json=body), 422) == (
        "topic 'orders.created' cannot be kept in memory only (persistent false): pull subscriptions read it from"
        " the ODB (audit)"
    )
    assert runtime_of(sqlite).live.topics["orders.created"].persistent


async def test_a_topic_a_subscription_names_is_not_deleted(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "b", "topic": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "a", "topic": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "by-pattern", "topic": "orders.*"}), 201)
    assert error(await sqlite.admin.delete(f"{TOPICS}/orders.created"), 409) == (
        "topic 'orders.created' has subscriptions: a, b; delete them first"
    )
    for name in ("a", "b"):
        await ok(sqlite.admin.delete(f"{SUBS}/{name}"))
    await ok(sqlite.admin.delete(f"{TOPICS}/orders.created"))
    assert "by-pattern" in runtime_of(sqlite).live.subscriptions  # a pattern may match no topic


# -- subscriptions ----------------------------------------------------------------------------------------


async def test_a_pull_subscription_needs_a_persistent_topic(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "ticks", "persistent": False}), 201)
    answer = await sqlite.admin.post(SUBS, json={"name": "watch", "topic": "ticks"})
    assert error(answer, 422) == (
        "subscription 'watch' has no service (a pull subscription), but topic 'ticks' is kept in memory only"
        " (persistent false): pull subscriptions need a persistent topic; give a service to push to"
    )
    assert answer.json()["error"]["code"] == "invalid_definition"
    await deploy(sqlite)
    pushed = await ok(sqlite.admin.post(SUBS, json={"name": "watch", "topic": "ticks", "service": "orders.ship"}), 201)
    assert pushed["warnings"] == []
    assert "watch" in runtime_of(sqlite).live.subscriptions


async def test_what_may_not_work_yet_is_said_in_warnings(sqlite: InProcess) -> None:
    body = {"name": "shipping", "topic": "orders.*", "service": "orders.ship"}
    made = await ok(sqlite.admin.post(SUBS, json=body), 201)
    assert made["warnings"] == [
        "topic pattern 'orders.*' matches no topic yet",
        "no service named 'orders.ship' is deployed yet: deliveries to it fail until one is",
    ]
    assert made["created"] is True
    assert made["subscription"]["ordered"] is True


async def test_a_subscription_name_is_taken_once(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(SUBS, json={"name": "s", "topic": "**"}), 201)
    assert error(await sqlite.admin.post(SUBS, json={"name": "s", "topic": "**"}), 409) == (
        "subscription 's' already exists"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "s", "topic": "orders.*x"}, "topic"),
        ({"name": "s", "topic": ""}, "topic"),
        ({"name": "s"}, "topic"),
        ({"name": "s", "topic": "a", "delivery_limit": 0}, "delivery_limit"),
        ({"name": "s", "topic": "a", "ordered": "no"}, "ordered"),
        ({"name": "s p", "topic": "a"}, "name"),
    ],
)
async def test_a_wrong_subscription_is_refused_naming_the_field(
    sqlite: InProcess, body: dict[str, Any], field: str
) -> None:
    answer = await sqlite.admin.post(SUBS, json=body)
    assert field in error(answer, 400)
    assert [p["field"] for p in answer.json()["error"]["problems"]] == [field]


async def test_a_backoff_above_its_maximum_is_refused_naming_both(sqlite: InProcess) -> None:
    body = {"name": "s", "topic": "a.*", "backoff": 10, "max_backoff": 1.5}
    assert error(await sqlite.admin.post(SUBS, json=body), 422) == (
        "subscription 's': max_backoff (1.5 s) must be at least backoff (10 s)"
    )
    assert error(await sqlite.admin.put(f"{SUBS}/s", json=body), 422).startswith("subscription 's': max_backoff")


async def test_a_subscription_names_an_existing_security_definition(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(f"{ADMIN}/security", json={"name": "partners", "kind": "apikey", "key": "k"}), 201)
    answer = await sqlite.admin.post(SUBS, json={"name": "s", "topic": "**", "security": "partner"})
    assert error(answer, 404) == (
        "no security definition named 'partner' (known security definitions: partners); did you mean 'partners'?"
    )
    await ok(sqlite.admin.post(SUBS, json={"name": "s", "topic": "**", "security": "partners"}), 201)


async def test_get_change_and_delete_a_subscription(sqlite: InProcess) -> None:
    runtime = runtime_of(sqlite)
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "audit", "topic": "orders.created"}), 201)
    row = await ok(sqlite.admin.get(f"{SUBS}/audit"))
    assert row["topic"] == "orders.created"
    assert set(row) >= {"ready", "in_flight", "dead", "oldest_age", "delivery_limit"}
    body = {"name": "audit", "topic": "orders.**", "ordered": False, "delivery_limit": 2}
    changed = await ok(sqlite.admin.put(f"{SUBS}/audit", json=body))
    assert changed["created"] is False
    assert runtime.live.subscriptions["audit"].delivery_limit == 2
    listed = await ok(sqlite.admin.get(SUBS))
    assert [(s["name"], s["topic"], s["ordered"]) for s in listed["subscriptions"]] == [("audit", "orders.**", False)]
    other = await sqlite.admin.put(f"{SUBS}/audits", json=body)
    assert error(other, 422) == "the body names subscription 'audit', the path 'audits': they must agree"
    await ok(sqlite.admin.delete(f"{SUBS}/audit"))
    assert "audit" not in runtime.live.subscriptions
    expected = "no subscription named 'audit' (known subscriptions: none)"
    assert error(await sqlite.admin.get(f"{SUBS}/audit"), 404) == expected
    assert error(await sqlite.admin.delete(f"{SUBS}/audit"), 404) == expected


async def test_queue_operations_name_the_known_subscriptions(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(SUBS, json={"name": "shipping", "topic": "orders.*"}), 201)
    expected = "no subscription named 'shiping' (known subscriptions: shipping); did you mean 'shipping'?"
    for answer in (
        await sqlite.admin.get(f"{SUBS}/shiping/messages"),
        await sqlite.admin.get(f"{SUBS}/shiping/dead"),
        await sqlite.admin.post(f"{SUBS}/shiping/purge"),
        await sqlite.admin.post(f"{SUBS}/shiping/replay", json={}),
    ):
        assert error(answer, 404) == expected


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("messages?state=gone", "state"),
        ("messages?limit=0", "limit"),
        ("messages?limit=many", "limit"),
        ("messages?limit=1001", "limit"),
        ("messages?colour=red", "colour"),
        ("dead?limit=-1", "limit"),
        ("purge?state=all", "state"),
    ],
)
async def test_a_wrong_query_is_refused_naming_the_parameter(sqlite: InProcess, path: str, field: str) -> None:
    await ok(sqlite.admin.post(SUBS, json={"name": "shipping", "topic": "orders.*"}), 201)
    method = "POST" if path.startswith("purge") else "GET"
    answer = await sqlite.admin.request(method, f"{SUBS}/shipping/{path}")
    error(answer, 400)
    assert [p["field"] for p in answer.json()["error"]["problems"]] == [field]


# -- topic permissions ------------------------------------------------------------------------------------


async def test_permissions_are_set_for_an_existing_security_definition(sqlite: InProcess) -> None:
    runtime = runtime_of(sqlite)
    answer = await sqlite.admin.put(f"{PERMISSIONS}/shop", json={"publish": ["orders.*"]})
    assert error(answer, 404) == "no security definition named 'shop' (known security definitions: none)"
    await ok(sqlite.admin.post(f"{ADMIN}/security", json={"name": "shop", "kind": "apikey", "key": "k"}), 201)
    await ok(sqlite.admin.put(f"{PERMISSIONS}/shop", json={"publish": ["orders.*"]}))
    changed = await ok(sqlite.admin.put(f"{PERMISSIONS}/shop", json={"subscribe": ["orders.**"]}))
    assert changed["created"] is False
    assert changed["permission"] == {"security": "shop", "publish": [], "subscribe": ["orders.**"]}
    assert runtime.live.permissions["shop"].may("subscribe", "orders.eu.created")
    assert not runtime.live.permissions["shop"].may("publish", "orders.created")
    await ok(sqlite.admin.delete(f"{PERMISSIONS}/shop"))
    assert "shop" not in runtime.live.permissions
    assert error(await sqlite.admin.delete(f"{PERMISSIONS}/shop"), 404) == (
        "security definition 'shop' has no topic permissions (those that have: none)"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"publish": ["orders.*x"]}, "publish[0]"),
        ({"subscribe": "orders.*"}, "subscribe"),
        ({"security": "other"}, "security"),
    ],
)
async def test_a_wrong_permission_is_refused_naming_the_field(
    sqlite: InProcess, body: dict[str, Any], field: str
) -> None:
    await ok(sqlite.admin.post(f"{ADMIN}/security", json={"name": "shop", "kind": "apikey", "key": "k"}), 201)
    answer = await sqlite.admin.put(f"{PERMISSIONS}/shop", json=body)
    error(answer, 400)
    assert [p["field"] for p in answer.json()["error"]["problems"]] == [field]


# -- publishing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "give data (any JSON value) or data_base64 (bytes, base64)"),
        ({"data": 1, "data_base64": "AA=="}, "give data or data_base64, not both"),
        ({"data_base64": "not base64"}, "data_base64"),
        ({"data": 1, "priority": 1.5}, "priority"),
        ({"data": 1, "expiry": -1}, "expiry"),
        ({"data": 1, "key": ""}, "key"),
        ({"data": 1, "headers": {"a": 1}}, "headers"),
    ],
)
async def test_a_wrong_publish_is_refused(sqlite: InProcess, body: dict[str, Any], text: str) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    assert text in error(await sqlite.admin.post(f"{TOPICS}/orders.created/publish", json=body), 400)


# -- the queue of a subscription --------------------------------------------------------------------------


async def until(check: Any, seconds: float = 20.0) -> Any:
    """Poll the coroutine function ``check`` until it returns something true; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"not true within {seconds} s: {check}")
        await asyncio.sleep(0.05)


async def test_publish_peek_and_purge_a_pull_subscription(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "audit", "topic": "orders.*"}), 201)
    publish = f"{TOPICS}/orders.created/publish"
    body = {"data": {"order": 1}, "headers": {"source": "shop"}, "key": "order-1", "priority": 0}
    first = await ok(sqlite.admin.post(publish, json=body))
    assert first == {
        "id": first["id"],
        "topic": "orders.created",
        "subscriptions": 1,
        "duplicate": False,
        "persistent": True,
    }
    again = await ok(sqlite.admin.post(publish, json=body))
    assert again["duplicate"] is True
    assert again["id"] == first["id"]
    raw = await ok(sqlite.admin.post(publish, json={"data_base64": "AP9hYmM=", "priority": 5, "expiry": 600}))
    assert raw["subscriptions"] == 1

    peeked = await ok(sqlite.admin.get(f"{SUBS}/audit/messages?limit=10"))
    assert peeked["subscription"] == "audit"
    assert peeked["state"] == "ready"
    messages = [row["message"] for row in peeked["messages"]]
    assert [m["id"] for m in messages] == [raw["id"], first["id"]]  # priority first, then publish order
    assert messages[0]["data"] == "AP9hYmM="
    assert messages[0]["encoding"] == "base64"
    assert messages[0]["expires_at"] is not None
    assert messages[1]["data"] == {"order": 1}
    assert messages[1]["encoding"] == "json"
    assert messages[1]["headers"] == {"source": "shop"}
    assert messages[1]["key"] == "order-1"
    assert messages[1]["publisher"] == "admin-api"
    assert [row["attempt"] for row in peeked["messages"]] == [0, 0]  # attempts made: none yet
    one = await ok(sqlite.admin.get(f"{SUBS}/audit/messages?limit=1"))
    assert len(one["messages"]) == 1

    (sub,) = (await ok(sqlite.admin.get(SUBS)))["subscriptions"]
    assert (sub["ready"], sub["in_flight"], sub["dead"]) == (2, 0, 0)
    assert sub["oldest_age"] is not None
    assert sub["oldest_age"] >= 0
    topic = await ok(sqlite.admin.get(f"{TOPICS}/orders.created"))
    assert topic["depth"] == 2
    assert topic["subscriptions"] == ["audit"]

    assert (await ok(sqlite.admin.post(f"{SUBS}/audit/purge?state=dead")))["purged"] == 0
    purged = await ok(sqlite.admin.post(f"{SUBS}/audit/purge?state=ready"))
    assert purged == {"subscription": "audit", "state": "ready", "purged": 2}
    assert (await ok(sqlite.admin.get(f"{SUBS}/audit/messages")))["messages"] == []
    assert (await ok(sqlite.admin.get(f"{SUBS}/audit")))["ready"] == 0


async def test_a_message_no_subscription_takes_is_not_kept(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    answer = await ok(sqlite.admin.post(f"{TOPICS}/orders.created/publish", json={"data": None}))
    assert answer["subscriptions"] == 0
    assert answer["duplicate"] is False


async def test_a_message_over_the_topics_max_payload_is_refused(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "small", "max_payload": 16}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "audit", "topic": "small"}), 201)
    message = error(await sqlite.admin.post(f"{TOPICS}/small/publish", json={"data": "x" * 40}), 413)
    assert "small" in message
    assert "16" in message
    big = base64.b64encode(b"x" * 17).decode()
    assert error(await sqlite.admin.post(f"{TOPICS}/small/publish", json={"data_base64": big}), 413)
    assert (await ok(sqlite.admin.post(f"{TOPICS}/small/publish", json={"data_base64": "eHh4"})))["subscriptions"] == 1


async def test_a_subscription_full_to_its_topics_max_depth_refuses_more(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created", "max_depth": 1}), 201)
    await ok(sqlite.admin.post(SUBS, json={"name": "audit", "topic": "orders.created"}), 201)
    await ok(sqlite.admin.post(f"{TOPICS}/orders.created/publish", json={"data": 1}))
    answer = await sqlite.admin.post(f"{TOPICS}/orders.created/publish", json={"data": 2})
    assert error(answer, 503) == (
        "subscription 'audit' of topic 'orders.created' holds 1 messages (max_depth 1): nothing was published"
    )
    await ok(sqlite.admin.post(f"{SUBS}/audit/purge"))
    await until(lambda: _accepted(sqlite, "orders.created"))  # once the broker reads the depth again


async def _accepted(server: InProcess, topic: str) -> bool:
    answer = await server.admin.post(f"{TOPICS}/{topic}/publish", json={"data": 3})
    return answer.status_code == 200


async def test_dead_letters_are_listed_with_their_error_and_replayed(sqlite: InProcess) -> None:
    runtime = runtime_of(sqlite)
    await deploy(sqlite)
    await ok(sqlite.admin.post(TOPICS, json={"name": "orders.created"}), 201)
    body = {"name": "refusing", "topic": "orders.created", "service": "orders.refuse", "delivery_limit": 1}
    await ok(sqlite.admin.post(SUBS, json=body), 201)
    await runtime.broker.start()  # the push deliverers (an in-process server starts no background part itself)
    published = await ok(sqlite.admin.post(f"{TOPICS}/orders.created/publish", json={"data": {"sku": "A1"}}))

    async def dead() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await ok(sqlite.admin.get(f"{SUBS}/refusing/dead")))["dead"]
        return rows

    (letter,) = await until(dead)
    assert letter["message"]["id"] == published["id"]
    assert letter["state"] == "dead"
    assert letter["attempts"] == 1
    assert "ValueError" in letter["last_error"]
    assert "no stock for {'sku': 'A1'}" in letter["last_error"]
    shown = await ok(sqlite.admin.get(f"{SUBS}/refusing/messages?state=dead"))
    assert [row["delivery"] for row in shown["messages"]] == [letter["delivery"]]
    assert (await ok(sqlite.admin.get(f"{SUBS}/refusing")))["dead"] == 1

    assert (await ok(sqlite.admin.post(f"{SUBS}/refusing/replay", json={"ids": [letter["delivery"] + 1000]})))[
        "replayed"
    ] == 0
    replayed = await ok(sqlite.admin.post(f"{SUBS}/refusing/replay", json={"ids": [letter["delivery"]]}))
    assert replayed == {"subscription": "refusing", "replayed": 1}
    (again,) = await until(dead)  # the service still refuses it: dead again after one more attempt
    assert again["message"]["id"] == published["id"]
    assert (await ok(sqlite.admin.post(f"{SUBS}/refusing/purge?state=dead")))["purged"] == 1
    assert await dead() == []


async def test_a_subscription_name_may_hold_a_slash(sqlite: InProcess) -> None:
    await ok(sqlite.admin.post(SUBS, json={"name": "team/audit", "topic": "**"}), 201)
    assert (await ok(sqlite.admin.get(f"{SUBS}/team/audit")))["name"] == "team/audit"
    assert (await ok(sqlite.admin.get(f"{SUBS}/team/audit/messages")))["subscription"] == "team/audit"
    answer = await sqlite.admin.put(f"{SUBS}/team/audit/messages", json={"name": "team/audit", "topic": "**"})
    assert answer.status_code == 405  # not a change of a subscription named 'team/audit/messages'
    assert answer.headers["allow"] == "GET, HEAD"
    assert (await ok(sqlite.admin.delete(f"{SUBS}/team/audit")))["deleted"] == "team/audit"
