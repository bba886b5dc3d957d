"""The broker on a real ODB: a quickstart cluster's server in this process, services deployed through its admin API.

Topics and subscriptions are stored through the repository and announced with ``runtime.config_changed`` (what
the admin API does after storing them). The deployed service ``t.record`` writes one JSON line per event of a
delivery (``start``, ``end``, ``fail``) to a file the tests read; it waits while a message says ``wait`` and the
gate file is missing, and fails while a message says ``fail`` and the gate file is missing. Tests poll for
what they expect, never sleep a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from splice.server.core.errors import BadRequest, Conflict, NotFound, TooLarge
from splice.server.core.pubsub import PubSubError, UnknownTopic
from splice.server.http.responses import http_status
from splice.server.pubsub.specs import SubscriptionSpec, TopicSpec
from tests.conftest import free_port, in_process

SERVICE = textwrap.dedent(
    """
    import asyncio, json, pathlib
    from splice.server import Service

    LOG = pathlib.Path({log!r})
    GATE = pathlib.Path({gate!r})


    def note(service, event):
        message = service.request.pubsub
        payload = service.request.payload
        line = {{"event": event, "sub": message.subscription, "attempt": message.attempt, "id": message.id,
                 "seq": payload.get("seq") if isinstance(payload, dict) else None, "server": service.server,
                 "channel": service.request.channel, "cid": service.cid, "topic": message.topic}}
        with LOG.open("a") as out:
            out.write(json.dumps(line) + "\\n")


    class Record(Service):
        name = "t.record"

        async def handle(self):
            note(self, "start")
            payload = self.request.payload
            if isinstance(payload, dict) and payload.get("wait"):
                while not GATE.exists():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            if isinstance(payload, dict) and payload.get("fail") and not GATE.exists():
                note(self, "fail")
                raise ValueError("told to fail")
            note(self, "end")


    class Publish(Service):
        name = "t.publish"

        async def handle(self):
            result = await self.apublish("orders.created", self.request.payload, key=self.request.payload.get("key"))
            self.response.payload = result.as_json()


    class PublishBlocking(Service):
        name = "t.publish-blocking"

        def handle(self):
            self.response.payload = self.publish("orders.created", self.request.payload).as_json()
    """
)


async def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.02)


class Node:
    """One in-process server with the recording service deployed."""

    def __init__(self, made: Any, tmp: Path) -> None:
        self.made = made
        self.runtime: Any = made.runtime
        self.broker: Any = self.runtime.broker
        self.log = tmp / "calls.jsonl"
        self.gate = tmp / "gate"

    def events(self, event: str = "end", sub: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [x for x in lines if x["event"] == event and (sub is None or x["sub"] == sub)]

    async def deploy(self) -> None:
        source = SERVICE.format(log=str(self.log), gate=str(self.gate))
        answer = await self.made.admin.post(
            "/splice/admin/deploy", json={"modules": [{"path": "record.py", "source": source}]}
        )
        assert answer.status_code == 200, answer.text

    async def topic(self, name: str, **options: Any) -> None:
        await self.runtime.repository.put_topic(TopicSpec(name=name, **options).model_dump(mode="json"), replace=True)
        await self.runtime.config_changed(f"topic:{name}")

    async def subscribe(self, name: str, topic: str, **options: Any) -> None:
        spec = SubscriptionSpec(name=name, topic=topic, **options).model_dump(mode="json")
        await self.runtime.repository.put_subscription(spec, replace=True)
        await self.runtime.config_changed(f"subscription:{name}")

    async def depth(self, name: str) -> dict[str, Any]:
        rows = (await self.broker.stats())["subscriptions"]
        return next(row for row in rows if row["name"] == name)


async def quickstart(directory: Path, odb: str, servers: int = 1) -> None:
    from splice.server.cli.cluster import quickstart_create

    await asyncio.to_thread(quickstart_create, directory, free_port(), odb, None, servers, None, False)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A server on SQLite with its broker started (what ``serve`` does)."""
    await quickstart(tmp_path / "cluster", f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}")
    async with in_process(tmp_path / "cluster") as made:
        made_node = Node(made, tmp_path)
        await made_node.deploy()
        await made_node.broker.start()
        await made_node.topic("orders.created")
        yield made_node


@pytest.fixture
async def node_on(tmp_path: Path, odb_url: str) -> AsyncIterator[Node]:
    """The same on every ODB backend."""
    await quickstart(tmp_path / "cluster", odb_url)
    async with in_process(tmp_path / "cluster") as made:
        made_node = Node(made, tmp_path)
        await made_node.deploy()
        await made_node.broker.start()
        await made_node.topic("orders.created")
        yield made_node


async def test_a_push_subscription_gets_every_message_once_in_order(node_on: Node) -> None:
    node = node_on
    await node.subscribe("shipping", "orders.created", service="t.record")
    results = [await node.broker.publish("orders.created", {"seq": seq}, publisher="test") for seq in range(120)]
    assert {r.subscriptions for r in results} == {1}
    assert {r.persistent for r in results} == {True}
    ended = await until(lambda: len(node.events()) >= 120 and node.events())
    assert [x["seq"] for x in ended] == list(range(120))
    assert {x["attempt"] for x in ended} == {1}
    assert {x["channel"] for x in ended} == {"pubsub:shipping"}
    assert [x["id"] for x in ended] == [r.id for r in results]
    depth = await until_depth(node, "shipping", ready=0, in_flight=0)
    assert depth["dead"] == 0


async def until_depth(node: Node, name: str, **expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        row = await node.depth(name)
        if all(row[k] == v for k, v in expected.items()):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is {row}, not {expected}")
        await asyncio.sleep(0.02)


async def test_a_failing_message_is_retried_then_dead_lettered_and_replay_delivers_it(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record", delivery_limit=3, backoff=0.05)
    published = await node.broker.publish("orders.created", {"seq": 1, "fail": True}, cid="cid-of-order-1")
    await until_depth(node, "shipping", dead=1, ready=0, in_flight=0)
    failures = node.events("fail")
    assert [x["attempt"] for x in failures] == [1, 2, 3]
    assert {x["cid"] for x in failures} == {"cid-of-order-1"}
    dead = await node.broker.peek("shipping", "dead")
    assert [d.message.id for d in dead] == [published.id]
    assert dead[0].last_error == "service 't.record' failed: ValueError: told to fail"
    node.gate.touch()  # the service works now
    assert await node.broker.replay("shipping") == 1
    ended = await until(lambda: node.events())
    assert [(x["seq"], x["attempt"]) for x in ended] == [(1, 1)]  # attempts counted afresh
    await until_depth(node, "shipping", dead=0, ready=0, in_flight=0)


async def test_an_ordered_retry_holds_back_the_messages_behind_it(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record", delivery_limit=2, backoff=0.05)
    await node.broker.publish("orders.created", {"seq": 0})
    await node.broker.publish("orders.created", {"seq": 1, "fail": True})
    await node.broker.publish("orders.created", {"seq": 2})
    await until_depth(node, "shipping", dead=1, ready=0, in_flight=0)
    lines = [json.loads(line) for line in node.log.read_text().splitlines()]
    assert [(x["event"], x["seq"]) for x in lines if x["event"] != "start"] == [
        ("end", 0),
        ("fail", 1),
        ("fail", 1),
        ("end", 2),
    ]


async def test_an_unordered_subscription_delivers_up_to_its_concurrency_at_once(node: Node) -> None:
    await node.subscribe("parallel", "orders.created", service="t.record", ordered=False, concurrency=4)
    for seq in range(10):
        await node.broker.publish("orders.created", {"seq": seq, "wait": True})
    await until(lambda: len(node.events("start")) == 4)
    await until_depth(node, "parallel", in_flight=4, ready=6)
    assert len(node.events("start")) == 4  # no fifth while four are under way
    node.gate.touch()
    await until(lambda: len(node.events()) == 10)
    assert sorted(x["seq"] for x in node.events()) == list(range(10))
    await until_depth(node, "parallel", in_flight=0, ready=0)


async def test_patterns_subscribe_to_one_segment_or_more(node: Node) -> None:
    for topic in ("orders.eu.created", "billing.paid"):
        await node.topic(topic)
    await node.subscribe("one", "orders.*")
    await node.subscribe("more", "orders.**")
    assert (await node.broker.publish("orders.created", {"seq": 1})).subscriptions == 2
    assert (await node.broker.publish("orders.eu.created", {"seq": 2})).subscriptions == 1
    assert (await node.broker.publish("billing.paid", {"seq": 3})).subscriptions == 0
    one = await node.broker.pull("one", limit=10)
    more = await node.broker.pull("more", limit=10)
    assert [d.message.data["seq"] for d in one] == [1]
    assert [(d.message.data["seq"], d.message.topic) for d in more] == [(1, "orders.created"), (2, "orders.eu.created")]
    stats = await node.broker.stats()
    topics = {t["name"]: t for t in stats["topics"]}
    assert topics["orders.created"]["subscriptions"] == ["more", "one"]
    assert topics["billing.paid"]["subscriptions"] == []


async def test_an_unknown_topic_is_refused_naming_the_known_ones(node: Node) -> None:
    with pytest.raises(UnknownTopic) as refused:
        await node.broker.publish("orders.creatd", {"seq": 1})
    assert (
        str(refused.value) == "no topic named 'orders.creatd' (did you mean 'orders.created'?); topics: orders.created"
    )
    assert http_status(refused.value) == 404


async def test_a_message_over_the_topics_limit_is_refused(node: Node) -> None:
    await node.topic("small", max_payload=100)
    with pytest.raises(TooLarge) as refused:
        await node.broker.publish("small", "x" * 200)
    assert str(refused.value) == "a message of 202 bytes is over the limit of topic 'small' (max_payload 100 bytes)"
    assert http_status(refused.value) == 413
    assert (await node.broker.publish("small", b"y" * 100)).subscriptions == 0  # bytes count as they are


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"x": float("nan")}, "nan at $.x: JSON has no NaN or Infinity"),
        ({"tags": {1, 2}}, "a set at $.tags: JSON has no sets"),
        ({"o": object()}, "at $.o"),
    ],
)
async def test_a_message_json_cannot_carry_is_refused_naming_the_place(node: Node, data: object, said: str) -> None:
    """Before: NaN was stored as ``NaN`` (no strict reader takes it) and a set refused without saying where."""
    await node.topic("strict")
    with pytest.raises(BadRequest) as refused:
        await node.broker.publish("strict", data)
    assert said in str(refused.value)
    assert "0x" not in str(refused.value)


async def test_a_repeated_idempotency_key_is_not_delivered_twice(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record")
    first = await node.broker.publish("orders.created", {"seq": 1}, key="order-1")
    again = await node.broker.publish("orders.created", {"seq": 2}, key="order-1")
    other = await node.broker.publish("orders.created", {"seq": 3}, key="order-3")
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert again.id == first.id
    assert again.subscriptions == 0
    await until(lambda: len(node.events()) == 2)
    await until_depth(node, "shipping", ready=0, in_flight=0)
    assert [x["seq"] for x in node.events()] == [1, 3]


async def test_a_non_persistent_topic_is_delivered_from_memory(node: Node) -> None:
    await node.topic("ticks", persistent=False)
    await node.subscribe("ticker", "ticks", service="t.record")
    await node.subscribe("tick-pull", "ticks")  # pull subscriptions get nothing of non-persistent topics
    results = [await node.broker.publish("ticks", {"seq": seq}) for seq in range(20)]
    assert {(r.persistent, r.subscriptions) for r in results} == {(False, 1)}
    assert all(str(r.id).startswith("m-") for r in results)
    ended = await until(lambda: len(node.events()) == 20 and node.events())
    assert [x["seq"] for x in ended] == list(range(20))
    assert ended[0]["id"] == results[0].id
    assert await node.broker.pull("tick-pull") == []
    rows = {row["name"]: row for row in (await node.broker.stats())["subscriptions"]}
    assert rows["ticker"]["memory"] == {"ready": 0, "in_flight": 0, "dead": 0}


async def test_a_pull_with_wait_returns_as_soon_as_a_message_is_published(node: Node) -> None:
    await node.subscribe("inbox", "orders.created")
    pulling = asyncio.create_task(node.broker.pull("inbox", limit=5, wait=30))
    await until(lambda: "inbox" in node.broker.bells._listeners)  # waiting on the subscription's doorbell
    assert not pulling.done()
    await node.broker.publish("orders.created", {"seq": 7})
    got = await asyncio.wait_for(pulling, 10)
    assert [d.message.data for d in got] == [{"seq": 7}]
    assert got[0].attempt == 1
    assert await node.broker.ack("inbox", [got[0].id]) == 1
    assert await node.broker.ack("inbox", [got[0].id]) == 0


async def test_pull_ack_and_nack(node: Node) -> None:
    await node.subscribe("inbox", "orders.created", backoff=0.05, delivery_limit=2, ordered=False)
    await node.subscribe("other", "orders.created")
    for seq in range(3):
        await node.broker.publish("orders.created", {"seq": seq})
    got = await node.broker.pull("inbox", limit=2)
    assert [d.message.data["seq"] for d in got] == [0, 1]
    others = await node.broker.pull("other", limit=1)
    assert await node.broker.ack("inbox", [got[0].id, others[0].id]) == 1  # another subscription's id: not counted
    assert await node.broker.nack("inbox", [got[1].id, others[0].id], "cannot handle it") == 1
    rest = await node.broker.pull("inbox", limit=10)
    assert [d.message.data["seq"] for d in rest] == [2]  # seq 1 waits for its backoff
    retried = await until_pulled(node, "inbox")
    assert [(d.message.data["seq"], d.attempt, d.last_error) for d in retried] == [(1, 2, "cannot handle it")]
    assert await node.broker.nack("inbox", [retried[0].id]) == 1  # at the delivery limit: dead
    dead = await node.broker.peek("inbox", "dead")
    assert [(d.message.data["seq"], d.last_error) for d in dead] == [(1, "given back by its reader")]


async def until_pulled(node: Node, name: str) -> list[Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = await node.broker.pull(name, limit=10, wait=1)
        if got:
            return list(got)
    raise AssertionError(f"nothing to pull from {name}")


async def test_pulling_what_cannot_be_pulled_says_why(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record")
    with pytest.raises(Conflict) as refused:
        await node.broker.pull("shipping")
    assert str(refused.value).startswith("subscription 'shipping' delivers to service 't.record': it cannot be pulled")
    with pytest.raises(NotFound, match=r"no subscription named 'shiping' \(did you mean 'shipping'\?\)"):
        await node.broker.pull("shiping")
    with pytest.raises(NotFound, match="no subscription named 'nothing'"):
        await node.broker.peek("nothing")


async def test_a_full_subscription_refuses_publishes(node: Node) -> None:
    await node.topic("bounded", max_depth=3)
    await node.subscribe("slow", "bounded")
    for seq in range(3):
        await node.broker.publish("bounded", {"seq": seq})
    refused = None
    for _ in range(100):  # the depths read for the check are at most a second old: it refuses from then on
        try:
            await node.broker.publish("bounded", {"seq": 99})
        except PubSubError as exc:
            refused = exc
            break
        await asyncio.sleep(0.05)
    assert refused is not None
    assert "subscription 'slow' of topic 'bounded' holds" in str(refused)
    assert "(max_depth 3)" in str(refused)
    assert http_status(refused) == 503


async def test_an_expired_message_is_not_delivered(node: Node) -> None:
    await node.subscribe("inbox", "orders.created")
    await node.broker.publish("orders.created", {"seq": 1}, expiry=0.001)
    await node.broker.publish("orders.created", {"seq": 2})
    expires = (await node.broker.peek("inbox"))[0].message.expires_us
    await until(lambda: time.time_ns() // 1000 > expires)
    got = await node.broker.pull("inbox", limit=10)
    assert [d.message.data["seq"] for d in got] == [2]


async def test_services_publish_with_self_publish_and_apublish(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record")
    for service, seq in (("t.publish", 1), ("t.publish-blocking", 2)):
        answer = await node.made.admin.post("/splice/admin/invoke", json={"service": service, "payload": {"seq": seq}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["payload"]["subscriptions"] == 1
    ended = await until(lambda: len(node.events()) == 2 and node.events())
    assert [x["seq"] for x in ended] == [1, 2]
    messages = await node.broker.peek("shipping", "ready")
    assert messages == []


async def test_deliverers_follow_the_subscriptions(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record")
    first = node.broker.deliverers["shipping", "odb"]
    await node.subscribe("shipping", "orders.created", service="t.record", ordered=False)
    second = node.broker.deliverers["shipping", "odb"]
    assert second is not first
    assert second.spec.ordered is False
    await until(lambda: not first.running)
    await node.runtime.repository.delete_subscription("shipping")
    await node.runtime.config_changed("subscription:shipping")
    assert ("shipping", "odb") not in node.broker.deliverers
    await until(lambda: not second.running)


async def test_stop_gives_back_what_was_claimed_and_not_started(node: Node) -> None:
    await node.subscribe("shipping", "orders.created", service="t.record")
    await node.broker.publish("orders.created", {"seq": 0, "wait": True})
    for seq in range(1, 5):
        await node.broker.publish("orders.created", {"seq": seq})
    await until(lambda: node.events("start"))
    stopping = asyncio.create_task(node.broker.stop())
    await until(lambda: not node.broker.deliverers)
    node.gate.touch()
    await stopping
    assert [x["seq"] for x in node.events()] == [0]
    waiting = await node.broker.peek("shipping", "ready", limit=10)
    assert [(d.message.data["seq"], d.attempt, d.lease_until_us) for d in waiting] == [(s, 0, 0) for s in range(1, 5)]


# -- two servers, one ODB ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def second_server(directory: Path) -> AsyncIterator[Any]:
    from splice.server.bootstrap import build_runtime
    from splice.server.config import load_settings

    runtime = await build_runtime(load_settings(directory), "server2")
    try:
        yield runtime
    finally:
        await runtime.close()


async def test_two_servers_share_push_subscriptions_without_delivering_a_message_twice_at_once(
    tmp_path: Path, odb_url: str
) -> None:
    await quickstart(tmp_path / "cluster", odb_url, servers=2)
    async with in_process(tmp_path / "cluster") as made, second_server(tmp_path / "cluster") as runtime2:
        one = Node(made, tmp_path)
        await one.deploy()
        await one.topic("orders.created")
        await one.subscribe("ordered", "orders.created", service="t.record")
        await one.subscribe("parallel", "orders.created", service="t.record", ordered=False, concurrency=4)
        await runtime2.cluster.catch_up()  # what the bus would have told it
        assert runtime2.store.get("t.record") is not None
        assert set(runtime2.live.subscriptions) == {"ordered", "parallel"}
        await one.broker.start()
        await runtime2.broker.start()
        count = 200
        for seq in range(count):
            broker = one.broker if seq % 2 else runtime2.broker
            await broker.publish("orders.created", {"seq": seq})
        await until(lambda: len(one.events()) == 2 * count, 120)
        lines = [json.loads(line) for line in one.log.read_text().splitlines()]
        for sub in ("ordered", "parallel"):
            ended = [x["seq"] for x in lines if x["sub"] == sub and x["event"] == "end"]
            assert sorted(ended) == list(range(count)), sub  # each once, none lost
        ordered = [x for x in lines if x["sub"] == "ordered"]
        # One at a time across both servers: each start is followed by its own end, in publish order.
        assert [(x["event"], x["seq"]) for x in ordered] == [(e, s) for s in range(count) for e in ("start", "end")]
        servers = {x["server"] for x in lines}
        assert servers == {"server1", "server2"}, servers  # both servers delivered
        await until_depth(one, "ordered", ready=0, in_flight=0, dead=0)
        await until_depth(one, "parallel", ready=0, in_flight=0, dead=0)


async def test_a_pubsub_event_from_another_server_rings_the_subscriptions_doorbell(node: Node) -> None:
    await node.subscribe("inbox", "orders.created")
    bell = asyncio.Event()
    node.broker.bells.listen("inbox", bell)
    event = {"origin": "server9", "boot": "b1", "n": 1, "event": "pubsub", "data": {"subscriptions": ["inbox"]}}
    assert await node.runtime.cluster.receive_events([event]) == 1
    assert bell.is_set()


async def test_a_sweep_drops_expired_messages(node: Node) -> None:
    await node.subscribe("inbox", "orders.created")
    await node.broker.publish("orders.created", {"seq": 1}, expiry=0.001)
    expires = (await node.broker.peek("inbox"))[0].message.expires_us
    await until(lambda: time.time_ns() // 1000 > expires)
    assert await node.broker.sweep() >= 1
    assert await node.broker.peek("inbox") == []


async def test_released_deliveries_are_claimed_again_with_their_attempt_not_counted(node: Node) -> None:
    await node.subscribe("inbox", "orders.created")
    await node.broker.publish("orders.created", {"seq": 1})
    first = await node.broker.pull("inbox", holder="reader-1")
    assert await node.broker.pull("inbox", holder="reader-2") == []  # ordered: one holder at a time
    await node.broker.release("inbox", [first[0].id])
    again = await node.broker.pull("inbox", holder="reader-2")
    assert [(d.id, d.attempt) for d in again] == [(first[0].id, 1)]
