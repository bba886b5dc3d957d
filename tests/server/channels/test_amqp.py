"""AMQP channels against the real RabbitMQ of this machine (127.0.0.1:5672, guest/guest), in an in-process server.

The server is real (a quickstart cluster on SQLite, its runtime and admin API in this process); the outgoing
connection, the service and the channels are made through the admin API, as a user would. Each test uses queues
with random names and deletes them (and their ``.retry`` and ``.dead`` queues) at the end. The deployed service
writes one JSON line per call to a file, which the tests read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from splice.server.channels._amqp_messages import (
    Undecodable,
    attempt_of,
    cid_of,
    copied_headers,
    error_text,
    payload_of,
    retry_delay,
    text_headers,
)
from splice.server.channels.amqp import AmqpChannels
from tests.amqp_broker import ADDRESS, PASSWORD, Broker, connected, until
from tests.conftest import InProcess, free_port, in_process

SERVICE = textwrap.dedent(
    """
    import asyncio, json, pathlib
    from splice.server import Service

    LOG = pathlib.Path({log!r})
    GATE = pathlib.Path({gate!r})

    class Record(Service):
        name = "amqp.record"

        async def handle(self):
            payload = self.request.payload
            shown = {{"hex": payload.hex()}} if isinstance(payload, bytes) else payload
            line = {{"type": type(payload).__name__, "payload": shown, "headers": dict(self.request.headers),
                     "cid": self.cid, "channel": self.request.channel}}
            with LOG.open("a") as out:
                out.write(json.dumps(line) + "\\n")
            if isinstance(payload, dict) and payload.get("wait"):
                while not GATE.exists():
                    await asyncio.sleep(0.02)
            if isinstance(payload, dict) and payload.get("fail"):
                raise ValueError("told to fail")
    """
)


# -- the pure part: what a message becomes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "payload"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/vnd.orders+json; charset=utf-8", {"a": 1}),
        (b"[1, 2]", None, [1, 2]),
        (b"42", None, 42),
        (b"hello", None, b"hello"),
        (b"\xff\x00", None, b"\xff\x00"),
        ("h\u00e9".encode(), "text/plain", "h\u00e9"),
        ("h\u00e9".encode("latin-1"), "text/csv; charset=ISO-8859-1", "h\u00e9"),
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        (b"\x00\x01", "application/octet-stream", b"\x00\x01"),
        (b"", "application/json", None),
    ],
)
def test_a_body_becomes_the_payload_its_content_type_says(body: bytes, content_type: str | None, payload: Any) -> None:
    assert payload_of(body, content_type) == payload
    assert type(payload_of(body, content_type)) is type(payload)


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"{not json", "application/json", "the body is not valid JSON (application/json)"),
        (b"\xff", "text/plain", "the text body is not valid utf-8"),
        (b"x", "text/plain; charset=klingon", "unknown charset 'klingon'"),
    ],
)
def test_a_body_its_content_type_does_not_fit_is_undecodable(body: bytes, content_type: str, problem: str) -> None:
    with pytest.raises(Undecodable, match=problem.replace("(", r"\(").replace(")", r"\)")):
        payload_of(body, content_type)


def test_headers_become_text_with_lower_case_names() -> None:
    when = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    headers = {"X-Tenant": b"acme", "n": 3, "ok": True, "at": when, "list": [1, b"b"], "s": "t"}
    assert text_headers(headers) == {
        "x-tenant": "acme",
        "n": "3",
        "ok": "true",
        "at": "2026-12-01T10:00:00+00:00",
        "list": '[1,"b"]',
        "s": "t",
    }
    assert text_headers(None) == {}


@pytest.mark.parametrize(
    ("headers", "correlation_id", "cid"),
    [
        ({"x-splice-cid": "abc123"}, "other", "abc123"),
        ({"x-splice-cid": b"abc123"}, None, "abc123"),
        ({}, "3f2c-11ee", "3f2c-11ee"),
        ({"x-splice-cid": "has spaces"}, "fine", "fine"),
        ({"x-splice-cid": "x" * 101}, None, None),
        (None, None, None),
    ],
)
def test_the_cid_comes_from_the_header_or_the_correlation_id(
    headers: dict[str, Any] | None, correlation_id: str | None, cid: str | None
) -> None:
    assert cid_of(headers, correlation_id) == cid


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [
        (None, 1),
        ({}, 1),
        ({"x-splice-attempt": 3}, 3),
        ({"x-splice-attempt": b"2"}, 2),
        ({"x-splice-attempt": "4"}, 4),
        ({"x-splice-attempt": 0}, 1),
        ({"x-splice-attempt": "x"}, 1),
        ({"x-splice-attempt": True}, 1),
    ],
)
def test_the_attempt_is_counted_in_a_header(headers: dict[str, Any] | None, attempt: int) -> None:
    assert attempt_of(headers) == attempt


def test_retries_wait_the_backoff_doubled_each_time() -> None:
    assert [retry_delay(1.5, n) for n in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 12.0]
    assert retry_delay(0, 5) == 0


def test_a_copy_keeps_its_headers_but_the_brokers_dead_lettering_record() -> None:
    headers = {"a": 1, "x-death": [{"count": 1}], "x-first-death-queue": "q.retry", "x-splice-attempt": 2}
    assert copied_headers(headers, {"b": 2}) == {"a": 1, "x-splice-attempt": 2, "b": 2}
    assert copied_headers(headers, {}, drop=("x-splice-attempt",)) == {"a": 1}
    long = error_text(ValueError("x" * 5000))
    assert long.endswith("...")
    assert len(long) == 2000
    assert error_text(ValueError()) == "ValueError"


# -- a real server and a real broker ------------------------------------------------------------------------


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with connected() as made:
        yield made


class Server:
    """An in-process server with its AMQP channels started, an ``mq`` connection and the recording service."""

    def __init__(self, made: InProcess, directory: Path) -> None:
        self.made = made
        self.log = directory / "calls.jsonl"
        self.gate = directory / "gate"
        runtime: Any = made.runtime
        self.channels = next(part for part in runtime.background if isinstance(part, AmqpChannels))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    async def post(self, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        answer = await self.made.admin.post(f"/splice/admin{path}", json=body)
        assert answer.status_code == status, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def channel(self, name: str, queue: str, **options: Any) -> None:
        body = {"name": name, "kind": "amqp", "service": "amqp.record", "connection": "mq", "queue": queue}
        await self.post("/channels", {**body, **options})
        if options.get("connection", "mq") == "mq":
            await until(lambda: name in self.channels.consuming)

    async def delete_channel(self, name: str) -> None:
        answer = await self.made.admin.delete(f"/splice/admin/channels/{name}")
        assert answer.status_code == 200, answer.text


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    odb = f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}"
    await asyncio.to_thread(quickstart_create, directory, free_port(), odb, None, 1, None, False)
    async with in_process(directory) as made:
        server = Server(made, tmp_path)
        await server.channels.start()  # what serve() does
        await server.post("/outgoing", {"name": "mq", "kind": "amqp", "address": ADDRESS, "password": PASSWORD})
        source = SERVICE.format(log=str(server.log), gate=str(server.gate))
        await server.post("/deploy", {"modules": [{"path": "record.py", "source": source}]}, status=200)
        yield server


async def test_messages_invoke_the_service_with_json_text_and_bytes_payloads(server: Server, broker: Broker) -> None:
    queue = broker.queue()
    await server.channel("orders-in", queue)
    await broker.publish(queue, b'{"n": 1}', content_type="application/json", headers={"X-Tenant": "acme"})
    await broker.publish(queue, "caf\u00e9".encode(), content_type="text/plain", correlation_id="corr-7")
    await broker.publish(queue, b"\x00\xff", content_type="application/octet-stream")
    await broker.publish(queue, b"[1, 2]", headers={"x-splice-cid": "cid-from-header"})
    calls = await until(lambda: len(server.calls()) == 4 and server.calls())
    by_type = {call["type"]: call for call in calls}
    assert by_type["dict"]["payload"] == {"n": 1}
    assert by_type["dict"]["headers"] == {"x-tenant": "acme"}
    assert by_type["dict"]["channel"] == "orders-in"
    assert len(by_type["dict"]["cid"]) == 24  # a new one
    assert by_type["str"]["payload"] == "caf\u00e9"
    assert by_type["str"]["cid"] == "corr-7"
    assert by_type["bytes"]["payload"] == {"hex": "00ff"}
    assert by_type["list"]["payload"] == [1, 2]
    assert by_type["list"]["cid"] == "cid-from-header"
    # Every message was acknowledged: none is ready again, nothing went to the dead letters.
    assert await broker.counts(queue) == (0, 1)
    assert (await broker.counts(f"{queue}.dead"))[0] == 0


async def test_a_failing_service_is_retried_with_backoff_then_dead_lettered_with_why(
    server: Server, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    queue = broker.queue()
    await server.channel("flaky", queue, retries=2, backoff=0.05)
    await broker.publish(queue, b'{"fail": true}', content_type="application/json", message_id="m-1")
    dead = await broker.take(f"{queue}.dead")
    calls = server.calls()
    assert len(calls) == 3  # the first attempt and two retries
    assert [call["headers"].get("x-splice-attempt") for call in calls] == [None, "2", "3"]
    assert len({call["cid"] for call in calls}) == 1  # one cid through every attempt
    headers = dead.headers
    assert headers["x-splice-error"] == "service 'amqp.record' failed: ValueError: told to fail"
    assert headers["x-splice-error-code"] == "service_failed"
    assert headers["x-splice-service"] == "amqp.record"
    assert headers["x-splice-channel"] == "flaky"
    assert headers["x-splice-queue"] == queue
    assert headers["x-splice-cid"] == calls[0]["cid"]
    assert headers["x-splice-attempts"] == 3
    assert "x-splice-attempt" not in headers
    assert "x-death" not in headers
    assert (dead.body, dead.content_type, dead.message_id) == (b'{"fail": true}', "application/json", "m-1")
    assert await broker.counts(queue) == (0, 1)
    assert (await broker.counts(f"{queue}.retry"))[0] == 0
    dead_lines = [r for r in caplog.records if r.levelno == logging.ERROR and "dead-letter queue" in r.getMessage()]
    assert len(dead_lines) == 1
    assert calls[0]["cid"] in dead_lines[0].getMessage()


async def test_without_retries_or_backoff_a_failure_goes_straight_on(server: Server, broker: Broker) -> None:
    queue, dead = broker.queue(), "splice-test-dead-" + secrets.token_hex(4)
    broker.queues.append(dead)
    await server.channel("no-retry", queue, retries=0, dead_letter=dead)
    await broker.publish(queue, b'{"fail": 1}', content_type="application/json")
    assert (await broker.take(dead)).headers["x-splice-attempts"] == 1
    queue2 = broker.queue()
    await server.channel("no-wait", queue2, retries=1, backoff=0.0)
    await broker.publish(queue2, b'{"fail": 2}', content_type="application/json")
    assert (await broker.take(f"{queue2}.dead")).headers["x-splice-attempts"] == 2
    assert [call["payload"] for call in server.calls()] == [{"fail": 1}, {"fail": 2}, {"fail": 2}]


async def test_a_message_that_cannot_be_decoded_is_dead_lettered_at_once(server: Server, broker: Broker) -> None:
    queue = broker.queue()
    await server.channel("strict", queue, retries=3)
    await broker.publish(queue, b"{not json", content_type="application/json")
    dead = await broker.take(f"{queue}.dead")
    assert dead.headers["x-splice-error-code"] == "undecodable"
    assert str(dead.headers["x-splice-error"]).startswith("the body is not valid JSON")
    assert dead.headers["x-splice-attempts"] == 0
    assert server.calls() == []


async def test_a_message_is_acknowledged_only_after_the_service_finished(server: Server, broker: Broker) -> None:
    queue = broker.queue()
    await server.channel("slow", queue)
    await broker.publish(queue, b'{"wait": true}', content_type="application/json")
    await until(server.calls)
    # Delivered, not acknowledged: the broker would give it back if this server died now.
    assert await broker.counts(queue) == (0, 1)
    server.gate.touch()
    # Once the service returned, the message is gone for good: stopping the consumer hands nothing back.
    consumer = server.channels.consumer("slow")
    assert consumer is not None
    await until(lambda: consumer.under_way == 0)
    await server.delete_channel("slow")
    assert await until(lambda: _no_consumer(broker, queue)) == (0, 0)


def _connection(server: Server, channel: str) -> object:
    consumer = server.channels.consumer(channel)
    assert consumer is not None
    return consumer.connection


async def _no_consumer(broker: Broker, queue: str) -> tuple[int, int] | None:
    counts = await broker.counts(queue)
    return counts if counts[1] == 0 else None


async def test_a_clean_stop_finishes_what_it_can_and_hands_back_the_rest(server: Server, broker: Broker) -> None:
    queue = broker.queue()
    await server.channel("draining", queue, prefetch=5)
    server.channels.grace = 0.5
    await broker.publish(queue, b'{"wait": true, "n": 1}', content_type="application/json")
    await until(server.calls)
    await server.channels.stop()  # the service waits for the gate: past the grace, it is not acknowledged
    assert server.channels.consuming == []
    assert await until(lambda: _no_consumer(broker, queue)) == (1, 0)  # back in the queue, not lost
    assert [call["payload"]["n"] for call in server.calls()] == [1]

    # Started again, the same message comes back; this time it finishes within the grace of the stop.
    await server.channels.start()
    await until(lambda: "draining" in server.channels.consuming)
    await until(lambda: len(server.calls()) == 2)
    server.channels.grace = 10.0
    stopping = asyncio.create_task(server.channels.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waiting for the message under way
    server.gate.touch()
    await stopping
    assert await until(lambda: _no_consumer(broker, queue)) == (0, 0)  # acknowledged, not handed back


async def test_channels_follow_the_configuration_at_run_time(
    server: Server, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = broker.queue(), broker.queue()
    await server.channel("moving", first)
    await broker.publish(first, b"1")
    await until(lambda: len(server.calls()) == 1)

    # Deleted: the consumer stops, messages stay in the queue.
    await server.delete_channel("moving")
    await until(lambda: _no_consumer(broker, first))
    await broker.publish(first, b"2")
    assert await broker.counts(first) == (1, 0)

    # Created again on another queue: that queue is consumed, the first is not.
    await server.channel("moving", second)
    await broker.publish(second, b"3")
    await until(lambda: len(server.calls()) == 2)
    assert [call["payload"] for call in server.calls()] == [1, 3]
    assert await broker.counts(first) == (1, 0)

    # Its connection changed: the consumer restarts on the new connection object.
    before = _connection(server, "moving")
    answer = await server.made.admin.put(
        "/splice/admin/outgoing/mq",
        json={"name": "mq", "kind": "amqp", "address": ADDRESS, "password": PASSWORD, "timeout": 5.0},
    )
    assert answer.status_code == 200, answer.text
    await until(lambda: "moving" in server.channels.consuming)
    assert _connection(server, "moving") is not before
    await broker.publish(second, b"4")
    await until(lambda: len(server.calls()) == 3)
    assert (await broker.counts(second))[1] == 1  # one consumer: the old one stopped

    # A channel whose connection is gone (deleted after the channel was made; the admin API refuses a channel
    # naming none): an error naming both, and it starts again once the connection is back.
    third = broker.queue()
    mq2 = {"name": "mq2", "kind": "amqp", "address": ADDRESS, "password": PASSWORD}
    await server.post("/outgoing", mq2)
    await server.post(
        "/channels",
        {"name": "later", "kind": "amqp", "service": "amqp.record", "connection": "mq2", "queue": third},
    )
    await until(lambda: "later" in server.channels.consuming)
    assert (await server.made.admin.delete("/splice/admin/outgoing/mq2")).status_code == 200
    await until(lambda: "later" not in server.channels.consuming)
    problems = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "'later'" in r.getMessage()]
    assert problems
    assert "mq2" in problems[0], problems
    await server.post("/outgoing", mq2)
    await until(lambda: "later" in server.channels.consuming)
    await broker.publish(third, b"5")
    await until(lambda: len(server.calls()) == 4)


async def test_a_queue_that_must_exist_is_waited_for(server: Server, broker: Broker) -> None:
    queue = broker.queue()
    await server.post(
        "/channels",
        {"name": "passive", "kind": "amqp", "service": "amqp.record", "connection": "mq", "queue": queue}
        | {"declare": False},
    )
    consumer = server.channels.consumer("passive")
    assert consumer is not None
    await asyncio.sleep(0.3)
    assert not consumer.consuming  # the queue does not exist: it is not made, and tried again
    await broker.channel.declare_queue(queue, durable=True)
    await until(lambda: consumer.consuming, 10)
    await broker.publish(queue, b'"here"', content_type="application/json")
    await until(lambda: [call["payload"] for call in server.calls()] == ["here"])


async def test_a_message_whose_dead_letter_cannot_be_published_is_not_lost(
    server: Server, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    queue = broker.queue()
    await server.channel("careful", queue, retries=0)
    await broker.channel.queue_delete(f"{queue}.dead")  # the broker now returns what is sent there
    await broker.publish(queue, b'{"fail": true}', content_type="application/json")
    # Not acknowledged: handed back to the queue, delivered and tried again.
    await until(lambda: len(server.calls()) >= 2)
    settled = [r.getMessage() for r in caplog.records if "could not be settled" in r.getMessage()]
    assert settled
    assert f"it goes back to queue {queue}" in settled[0]
    dead = await broker.take(f"{queue}.dead")  # declared again: the next attempt lands there
    assert dead.headers["x-splice-attempts"] == 1
    assert await until(lambda: _no_ready(broker, queue))


async def _no_ready(broker: Broker, queue: str) -> bool:
    return (await broker.counts(queue))[0] == 0
