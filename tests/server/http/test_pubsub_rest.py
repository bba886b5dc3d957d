"""Pub/sub over REST (``/splice/pubsub``), in-process (the ASGI app through httpx), on a real broker and ODB.

Credentials of the cluster's security definitions, per-topic permissions (403 saying what the caller may do),
404s naming what the caller may see, the body limit (413 before the body is read whole), publishing JSON and
bytes with the X-Splice-* headers, subscribing, pulling (long poll), acknowledging.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from splice.server.cli.cluster import quickstart_create
from splice.server.runtime import Runtime
from tests.conftest import InProcess, free_port, in_process
from tests.server.http._pubsub import PARTNER, PEOPLE, ROBOTS, permit, securities, subscription, topic

P = "/splice/pubsub"


@dataclass
class PubSub:
    runtime: Runtime
    client: httpx.AsyncClient
    admin: httpx.AsyncClient


@pytest.fixture
async def ps(tmp_path: Path) -> AsyncIterator[PubSub]:
    """One server in-process on SQLite with three security definitions, topics and permissions:

    partner may publish to orders.* and tiny, and subscribe to orders.*; robots may subscribe to invoices.*;
    people may do nothing."""
    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    async with in_process(directory) as made:
        runtime: Runtime = made.runtime  # type: ignore[assignment]
        await securities(made.admin)
        for name in ("orders.created", "orders.shipped", "invoices.paid", "invoices.sent"):
            await topic(runtime, name)
        await topic(runtime, "tiny", max_payload=1024)
        await topic(runtime, "orders.flash", persistent=False)
        await permit(runtime, "partner", publish=["orders.*", "tiny"], subscribe=["orders.*"])
        await permit(runtime, "robots", publish=[], subscribe=["invoices.*"])
        yield PubSub(runtime, made.client, made.admin)


async def test_no_or_wrong_credentials_answer_401(ps: PubSub) -> None:
    wrong_basic = {"Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-Robot-Key": PARTNER["X-API-Key"]}, wrong_basic):
        for method, path in (("POST", "/topics/orders.created"), ("GET", "/subscriptions/x/messages")):
            answer = await ps.client.request(method, P + path, headers=headers, json={})
            assert answer.status_code == 401, (headers, path)
            assert answer.json()["error"]["code"] == "unauthorized"
            assert "credentials of one of the cluster's security definitions" in answer.json()["error"]["message"]
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="splice"'  # the cluster has a Basic definition
            assert answer.headers["X-Splice-CID"] == answer.json()["cid"]
    # Each definition's credentials are known (here: refused by permissions, not by credentials).
    for headers in (PARTNER, ROBOTS, PEOPLE):
        answer = await ps.client.post(P + "/topics/invoices.paid", headers=headers, json={})
        assert answer.status_code == 403, answer.text


async def test_a_cluster_without_security_definitions_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "bare"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    async with in_process(directory) as made:
        answer = await made.client.post(P + "/topics/a", json={})
        assert answer.status_code == 401
        assert "the cluster has none" in answer.json()["error"]["message"]
        assert "WWW-Authenticate" not in answer.headers


async def test_publishing_where_not_permitted_is_403_saying_what_may_be_done(ps: PubSub) -> None:
    answer = await ps.client.post(P + "/topics/invoices.paid", headers=PARTNER, json={"n": 1})
    assert answer.status_code == 403
    assert answer.json()["error"] == {
        "code": "forbidden",
        "message": (
            "security definition 'partner' may not publish to 'invoices.paid'; it may publish to: orders.*, tiny"
        ),
    }
    answer = await ps.client.post(P + "/topics/orders.created", headers=ROBOTS, json={})
    assert answer.json()["error"]["message"] == (
        "security definition 'robots' may not publish to 'orders.created'; it may publish to no topic"
    )
    answer = await ps.client.post(P + "/topics/nowhere", headers=PEOPLE, json={})  # unknown: no hint it is
    assert answer.status_code == 403
    assert "no topic" in answer.json()["error"]["message"]


async def test_unknown_topics_and_subscriptions_are_404_naming_what_the_caller_may_see(ps: PubSub) -> None:
    answer = await ps.client.post(P + "/topics/orders.craeted", headers=PARTNER, json={})
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "topic_not_found"
    assert error["message"] == (
        "no topic named 'orders.craeted' (did you mean 'orders.created'?); topics 'partner' may publish to: "
        "orders.created, orders.flash, orders.shipped, tiny"
    )
    assert "invoices" not in error["message"]

    answer = await ps.client.post(P + "/topics/not a topic", headers=PARTNER, json={})
    assert answer.status_code == 400
    assert "is not a topic name" in answer.json()["error"]["message"]

    await subscription(ps.runtime, "invoice-feed", "invoices.*")
    await subscription(ps.runtime, "order-feed", "orders.*")
    await subscription(ps.runtime, "order-mail", "orders.*", service="mailer")  # push: nobody reads it
    answer = await ps.client.get(P + "/subscriptions/order-fed/messages", headers=PARTNER)
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == (
        "no subscription named 'order-fed' (did you mean 'order-feed'?); subscriptions 'partner' may read: order-feed"
    )
    answer = await ps.client.get(P + "/subscriptions/x/messages", headers=PEOPLE)
    assert (
        answer.json()["error"]["message"] == "no subscription named 'x'; there are no subscriptions 'people' may read"
    )


async def test_reading_a_subscription_needs_subscribe_permission_for_its_topic(ps: PubSub) -> None:
    await subscription(ps.runtime, "invoice-feed", "invoices.*")
    await subscription(ps.runtime, "order-mail", "orders.*", service="mailer")
    answer = await ps.client.get(P + "/subscriptions/invoice-feed/messages", headers=PARTNER)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == (
        "security definition 'partner' may not read subscription 'invoice-feed' of topic 'invoices.*': "
        "it may not subscribe to 'invoices.*'; it may subscribe to: orders.*"
    )
    answer = await ps.client.post(P + "/subscriptions/invoice-feed/ack", headers=PARTNER, json={"ids": [1]})
    assert answer.status_code == 403
    answer = await ps.client.get(P + "/subscriptions/order-mail/messages", headers=PARTNER)
    assert answer.status_code == 409
    assert "delivers to service 'mailer' (a push subscription)" in answer.json()["error"]["message"]


async def test_a_body_over_the_topics_max_payload_is_413_before_it_is_read_whole(ps: PubSub) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1
            yield b"x" * 512

    answer = await ps.client.post(P + "/topics/tiny", headers=PARTNER, content=body())  # chunked: no length
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "too_large",
        "message": "a message for topic 'tiny' may have at most 1024 bytes (max_payload)",
    }
    assert sent <= 4, f"{sent} chunks of 512 bytes were read for a limit of 1024"

    sent = 0
    declared = {**PARTNER, "Content-Length": "4096"}
    answer = await ps.client.post(P + "/topics/tiny", headers=declared, content=body())  # refused by its length
    assert answer.status_code == 413
    assert sent <= 1

    answer = await ps.client.post(P + "/topics/tiny", headers=PARTNER, content=b"x" * 1024)  # at the limit
    assert answer.status_code == 201, answer.text


async def test_publish_json_and_bytes_then_pull_and_ack(ps: PubSub) -> None:
    await subscription(ps.runtime, "order-feed", "orders.*")
    headers = {
        **PARTNER,
        "X-Splice-Key": "order-1",
        "X-Splice-Priority": "5",
        "X-Splice-Expiry": "3600",
        "X-Splice-Header-Region": "eu",
    }
    first = await ps.client.post(P + "/topics/orders.created", headers=headers, json={"id": 1, "total": 9.5})
    assert first.status_code == 201, first.text
    result = first.json()
    assert result["topic"] == "orders.created"
    assert result["subscriptions"] == 1
    assert result["duplicate"] is False
    assert first.headers["X-Splice-CID"]

    again = await ps.client.post(P + "/topics/orders.created", headers=headers, json={"id": 1, "total": 9.5})
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == result["id"]

    raw = b"\x00\x01binary\xff"
    kind = {**PARTNER, "Content-Type": "application/octet-stream"}
    assert (await ps.client.post(P + "/topics/orders.shipped", headers=kind, content=raw)).status_code == 201

    pulled = await ps.client.get(P + "/subscriptions/order-feed/messages", params={"limit": 10}, headers=PARTNER)
    assert pulled.status_code == 200, pulled.text
    messages = pulled.json()["messages"]
    assert len(messages) == 2
    json_one = next(m for m in messages if m["message"]["topic"] == "orders.created")
    assert json_one["message"]["data"] == {"id": 1, "total": 9.5}
    assert json_one["message"]["encoding"] == "json"
    assert json_one["message"]["headers"] == {"region": "eu"}
    assert json_one["message"]["priority"] == 5
    assert json_one["message"]["key"] == "order-1"
    assert json_one["message"]["publisher"] == "rest:partner"
    assert json_one["message"]["cid"] == first.headers["X-Splice-CID"]
    assert json_one["message"]["expires_at"] is not None
    assert json_one["attempt"] == 1
    bytes_one = next(m for m in messages if m["message"]["topic"] == "orders.shipped")
    assert bytes_one["message"]["encoding"] == "base64"
    assert base64.b64decode(bytes_one["message"]["data"]) == raw

    ids = [m["delivery"] for m in messages]
    acked = await ps.client.post(P + "/subscriptions/order-feed/ack", headers=PARTNER, json={"ids": ids})
    assert acked.json() == {"acked": 2}
    empty = await ps.client.get(P + "/subscriptions/order-feed/messages", headers=PARTNER)
    assert empty.json() == {"messages": []}


async def test_nack_gives_a_message_back_for_another_attempt(ps: PubSub) -> None:
    await subscription(ps.runtime, "order-feed", "orders.*", backoff=0.0, max_backoff=0.0)
    await ps.client.post(P + "/topics/orders.created", headers=PARTNER, json={"n": 1})
    first = (await ps.client.get(P + "/subscriptions/order-feed/messages", headers=PARTNER)).json()["messages"]
    assert [m["attempt"] for m in first] == [1]
    body = {"ids": [first[0]["delivery"]], "error": "the ledger was locked"}
    nacked = await ps.client.post(P + "/subscriptions/order-feed/nack", headers=PARTNER, json=body)
    assert nacked.json() == {"nacked": 1}
    second = await ps.client.get(P + "/subscriptions/order-feed/messages", params={"wait": 10}, headers=PARTNER)
    again = second.json()["messages"]
    assert [(m["message"]["data"], m["attempt"]) for m in again] == [({"n": 1}, 2)]
    assert again[0]["last_error"] == "the ledger was locked"


async def test_subscribe_pull_ack_unsubscribe(ps: PubSub) -> None:
    body = {"name": "mine", "topic": "orders.*"}
    made = await ps.client.post(P + "/subscriptions", headers=PARTNER, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["subscription"]["security"] == "partner"
    assert made.json()["created"] is True
    assert ps.runtime.live.subscriptions["mine"].security == "partner"
    again = await ps.client.post(P + "/subscriptions", headers=PARTNER, json=body)
    assert (again.status_code, again.json()["created"]) == (200, False)

    listed = await ps.client.get(P + "/subscriptions", headers=PARTNER)
    assert [s["name"] for s in listed.json()["subscriptions"]] == ["mine"]

    for n in range(3):
        published = await ps.client.post(P + "/topics/orders.created", headers=PARTNER, json={"n": n})
        assert published.json()["subscriptions"] == 1
    pulled = await ps.client.get(P + "/subscriptions/mine/messages", params={"limit": 2}, headers=PARTNER)
    messages = pulled.json()["messages"]
    assert [m["message"]["data"] for m in messages] == [{"n": 0}, {"n": 1}]
    ids = [m["delivery"] for m in messages]
    assert (await ps.client.post(P + "/subscriptions/mine/ack", headers=PARTNER, json={"ids": ids})).json() == {
        "acked": 2
    }
    rest = await ps.client.get(P + "/subscriptions/mine/messages", headers=PARTNER)
    assert [m["message"]["data"] for m in rest.json()["messages"]] == [{"n": 2}]

    # robots may subscribe to invoices.*, and may neither read nor delete partner's subscription.
    theirs = await ps.client.get(P + "/subscriptions/mine/messages", headers=ROBOTS)
    assert theirs.status_code == 403
    assert "made by another security definition" in theirs.json()["error"]["message"]
    taken = await ps.client.post(P + "/subscriptions", headers=ROBOTS, json={"name": "mine", "topic": "invoices.*"})
    assert taken.status_code == 409
    deleted = await ps.client.delete(P + "/subscriptions/mine", headers=ROBOTS)
    assert deleted.status_code == 403

    deleted = await ps.client.delete(P + "/subscriptions/mine", headers=PARTNER)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] == "mine"
    assert "mine" not in ps.runtime.live.subscriptions
    gone = await ps.client.get(P + "/subscriptions/mine/messages", headers=PARTNER)
    assert gone.status_code == 404


async def test_subscribe_refusals(ps: PubSub) -> None:
    async def subscribe(body: object, headers: dict[str, str] = PARTNER) -> httpx.Response:
        return await ps.client.post(P + "/subscriptions", headers=headers, json=body)

    refused = await subscribe({"name": "x", "topic": "invoices.*"})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "security definition 'partner' may not subscribe to 'invoices.*'; it may subscribe to: orders.*"
    )
    wide = await subscribe({"name": "x", "topic": "**"})
    assert wide.status_code == 403
    unknown = await subscribe({"name": "x", "topic": "orders.nope"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "topic_not_found"
    memory = await subscribe({"name": "x", "topic": "orders.flash"})
    assert memory.status_code == 422
    assert "topic 'orders.flash' is not persistent" in memory.json()["error"]["message"]
    service = await subscribe({"name": "x", "topic": "orders.*", "service": "mailer"})
    assert service.status_code == 400
    assert "service: not a field of a subscription made here" in service.json()["error"]["message"]
    bad = await subscribe({"name": "x", "topic": "orders..*", "delivery_limit": 0})
    assert bad.status_code == 400
    assert {p["field"] for p in bad.json()["error"]["problems"]} == {"topic", "delivery_limit"}
    not_object = await subscribe([1])
    assert not_object.status_code == 400

    await subscription(ps.runtime, "admins", "orders.*")
    theirs = await subscribe({"name": "admins", "topic": "orders.*"})
    assert theirs.status_code == 409
    assert (await ps.client.delete(P + "/subscriptions/admins", headers=PARTNER)).status_code == 403
    mine = await subscribe({"name": "mine", "topic": "orders.*"})
    assert mine.status_code == 201
    other_topic = await subscribe({"name": "mine", "topic": "orders.created"})
    assert other_topic.status_code == 409
    assert "unsubscribe first" in other_topic.json()["error"]["message"]
    changed = await subscribe({"name": "mine", "topic": "orders.*", "delivery_limit": 9})
    assert changed.status_code == 200
    assert ps.runtime.live.subscriptions["mine"].delivery_limit == 9


async def test_bad_pulls_and_acks_are_400(ps: PubSub) -> None:
    await subscription(ps.runtime, "order-feed", "orders.*")
    url = P + "/subscriptions/order-feed"
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"wait": "61"}, {"wait": "nan"}, {"at": "1"}):
        answer = await ps.client.get(url + "/messages", params=params, headers=PARTNER)
        assert answer.status_code == 400, params
    for body in ({"ids": "1"}, {"ids": [True]}, {"ids": [1], "more": 1}, {"ids": list(range(1001))}):
        answer = await ps.client.post(url + "/ack", headers=PARTNER, json=body)
        assert answer.status_code == 400, body
    answer = await ps.client.post(url + "/ack", headers=PARTNER, content=b"{not json")
    assert answer.status_code == 400
    for name, value in (("X-Splice-Priority", "high"), ("X-Splice-Expiry", "-1"), ("X-Splice-Expiry", "inf")):
        answer = await ps.client.post(P + "/topics/orders.created", headers={**PARTNER, name: value}, json=1)
        assert answer.status_code == 400, (name, value)
        assert name in answer.json()["error"]["message"]
    answer = await ps.client.post(
        P + "/topics/orders.created", headers={**PARTNER, "Content-Type": "application/json"}, content=b"{x"
    )
    assert answer.status_code == 400
    answer = await ps.client.put(P + "/topics/orders.created", headers=PARTNER, json=1)
    assert answer.status_code == 405
    answer = await ps.client.head(url + "/messages", headers=PARTNER)  # it would claim what nobody gets
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"


async def test_a_long_poll_returns_when_a_message_is_published(ps: PubSub) -> None:
    await subscription(ps.runtime, "order-feed", "orders.*")
    url = P + "/subscriptions/order-feed/messages"
    waiting = asyncio.create_task(ps.client.get(url, params={"wait": 30}, headers=PARTNER))
    await asyncio.sleep(0)  # the pull starts waiting (it finds the message either way)
    published = await ps.client.post(P + "/topics/orders.created", headers=PARTNER, json={"late": True})
    assert published.status_code == 201
    answer = await asyncio.wait_for(waiting, 25)  # well before its 30 s: the publish woke it
    assert [m["message"]["data"] for m in answer.json()["messages"]] == [{"late": True}]


async def test_a_long_poll_with_nothing_to_claim_answers_empty(ps: PubSub) -> None:
    await subscription(ps.runtime, "order-feed", "orders.*")
    answer = await ps.client.get(P + "/subscriptions/order-feed/messages", params={"wait": 0.2}, headers=PARTNER)
    assert answer.status_code == 200
    assert answer.json() == {"messages": []}


async def test_publish_pull_ack_on_every_odb(server: InProcess) -> None:
    runtime: Runtime = server.runtime  # type: ignore[assignment]
    await securities(server.admin)
    await topic(runtime, "orders.created")
    await permit(runtime, "people", publish=["orders.*"], subscribe=["orders.**"])
    made = await server.client.post(P + "/subscriptions", headers=PEOPLE, json={"name": "mine", "topic": "orders.**"})
    assert made.status_code == 201, made.text
    raw = bytes(range(256)) * 300  # 76,800 bytes: over a 64 KiB BLOB
    as_json = {**PEOPLE, "Content-Type": "application/json"}
    as_bytes = {**PEOPLE, "Content-Type": "application/octet-stream", "X-Splice-Key": "k"}
    for headers, body in ((as_json, b'{"n": 1}'), (as_bytes, raw), (as_bytes, raw)):
        assert (await server.client.post(P + "/topics/orders.created", headers=headers, content=body)).is_success
    pulled = await server.client.get(P + "/subscriptions/mine/messages", params={"limit": 5}, headers=PEOPLE)
    messages = pulled.json()["messages"]
    assert [m["message"]["encoding"] for m in messages] == ["json", "base64"]  # the repeated key: not enqueued
    assert messages[0]["message"]["data"] == {"n": 1}
    assert base64.b64decode(messages[1]["message"]["data"]) == raw
    ids = [m["delivery"] for m in messages]
    acked = await server.client.post(P + "/subscriptions/mine/ack", headers=PEOPLE, json={"ids": ids})
    assert acked.json() == {"acked": 2}
    assert (await runtime.repository.depths(["mine"]))["mine"].ready == 0
