"""Deliverers (``pubsub.delivery``) over this server's in-memory queues (``pubsub.memory``), with a real invoker.

The services are real ``Service`` classes registered in a real ``ServiceStore``; the source is the real
``MemoryQueue`` of non-persistent topics (the ODB source is exercised in ``test_broker.py``). What a service saw
is kept in ``SEEN`` (class attributes, reset per test); tests poll for it, never sleep a fixed time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from splice.server import Service
from splice.server.core.invoker import Invoker
from splice.server.core.pubsub import PubSubError, PubSubMessage
from splice.server.core.store import ServiceStore, describe
from splice.server.pubsub.delivery import Bells, Deliverer, pubsub_message
from splice.server.pubsub.memory import MemoryKeys, MemoryQueue, MemoryTopics
from splice.server.pubsub.specs import SubscriptionSpec, TopicSpec
from splice.server.pubsub.store import NewMessage, encode


class Seen:
    calls: ClassVar[list[dict[str, Any]]] = []
    under_way: ClassVar[int] = 0
    most_at_once: ClassVar[int] = 0
    gate: ClassVar[asyncio.Event | None] = None
    gates: ClassVar[dict[tuple[int, int], asyncio.Event]] = {}
    """Gates of their own for some (seq, attempt)."""
    fail_until: ClassVar[dict[int, int]] = {}
    """seq -> the attempt from which the call succeeds (fails before it)."""


class Record(Service):
    name = "test.record"

    async def handle(self) -> None:
        message = self.request.pubsub
        assert message is not None
        Seen.under_way += 1
        Seen.most_at_once = max(Seen.most_at_once, Seen.under_way)
        try:
            seq = self.request.payload["seq"]
            Seen.calls.append({"seq": seq, "attempt": message.attempt, "cid": self.cid, "message": message})
            if Seen.gate is not None:
                await Seen.gate.wait()
            if (seq, message.attempt) in Seen.gates:
                await Seen.gates[seq, message.attempt].wait()
            await asyncio.sleep(0)  # let another delivery in, if the deliverer would allow it
            if message.attempt < Seen.fail_until.get(seq, 0):
                raise ValueError(f"told to fail seq {seq}")
        finally:
            Seen.under_way -= 1


class Blocking(Service):
    name = "test.blocking"

    def handle(self) -> None:  # a plain def: runs in a worker thread
        Seen.calls.append({"seq": self.request.payload["seq"], "attempt": self.request.pubsub.attempt})


@pytest.fixture(autouse=True)
def fresh() -> None:
    Seen.calls, Seen.under_way, Seen.most_at_once, Seen.gate, Seen.fail_until, Seen.gates = [], 0, 0, None, {}, {}


@pytest.fixture
def invoker() -> Invoker:
    store = ServiceStore()
    namespace = vars(sys.modules[__name__])
    store.swap(set(), [describe(cls, __name__, __file__, 1, namespace) for cls in (Record, Blocking)])
    return Invoker(store, "server1")


async def until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.01)


def message(seq: int, topic: str = "orders.created", **options: Any) -> NewMessage:
    payload, is_json = encode({"seq": seq})
    return NewMessage(topic, payload, is_json, published_us=time.time_ns() // 1000, **options)


def spec(**options: Any) -> SubscriptionSpec:
    return SubscriptionSpec(**{"name": "sub", "topic": "orders.*", "service": "test.record", **options})


@pytest.fixture
async def running(invoker: Invoker) -> AsyncIterator[Callable[..., tuple[MemoryQueue, Deliverer]]]:
    made: list[Deliverer] = []

    def start(subscription: SubscriptionSpec, messages: int = 0) -> tuple[MemoryQueue, Deliverer]:
        queue = MemoryQueue(subscription)
        for seq in range(messages):
            queue.put(seq, message(seq))
        deliverer = Deliverer(subscription, queue, invoker, Bells())
        deliverer.start()
        made.append(deliverer)
        return queue, deliverer

    yield start
    for deliverer in made:
        await deliverer.stop(grace=1.0)


async def test_an_ordered_subscription_gets_every_message_once_in_order_one_at_a_time(running: Any) -> None:
    queue, deliverer = running(spec(), messages=120)  # more than one claimed batch
    await until(lambda: len(queue) == 0)
    assert [c["seq"] for c in Seen.calls] == list(range(120))
    assert {c["attempt"] for c in Seen.calls} == {1}
    assert Seen.most_at_once == 1
    assert deliverer.delivered == 120


async def test_what_a_service_is_told_of_the_message(running: Any, invoker: Invoker) -> None:
    queue = MemoryQueue(spec())
    deliverer = Deliverer(spec(), queue, invoker, Bells())
    queue.put(7, message(1, headers={"tenant": "acme"}, priority=3, publisher="shop", cid="cid-of-publish", key="k1"))
    deliverer.start()
    try:
        call = await until(lambda: Seen.calls and Seen.calls[0])
    finally:
        await deliverer.stop()
    told: PubSubMessage = call["message"]
    assert told.id == "m-7"
    assert (told.topic, told.subscription, told.attempt) == ("orders.created", "sub", 1)
    assert told.headers == {"tenant": "acme"}
    assert (told.priority, told.publisher, told.cid, told.key) == (3, "shop", "cid-of-publish", "k1")
    assert told.published_at is not None
    assert told.expires_at is None
    assert call["cid"] == "cid-of-publish"  # the call runs under the message's cid


async def test_a_failing_message_is_retried_with_backoff_then_dead_lettered_and_logged_with_its_cid(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    Seen.fail_until = {0: 99}
    caplog.set_level(logging.WARNING, "splice.server.pubsub.delivery")
    queue, deliverer = running(spec(delivery_limit=3, backoff=0.01, max_backoff=0.02), messages=1)
    await until(lambda: queue.dead == 1)
    assert [c["attempt"] for c in Seen.calls] == [1, 2, 3]
    assert len(queue) == 0
    ours = [r for r in caplog.records if r.name == "splice.server.pubsub.delivery"]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1 of 3 failed, retried in 0.01 s" in warnings[0]
    assert "told to fail seq 0" in warnings[0]
    assert f"(cid {Seen.calls[0]['cid']})" in warnings[0]
    dead = [r.getMessage() for r in ours if r.levelno == logging.ERROR]
    assert len(dead) == 1
    assert "dead-lettered after 3 attempts" in dead[0]
    assert all("seq': 0" not in r.getMessage() for r in caplog.records)  # never the payload
    assert deliverer.failed == 3


async def test_in_order_a_message_waiting_for_its_retry_holds_back_the_ones_behind_it(running: Any) -> None:
    Seen.fail_until = {1: 3}  # the second message succeeds at its third attempt
    queue, _ = running(spec(delivery_limit=5, backoff=0.02, max_backoff=0.05), messages=4)
    await until(lambda: len(queue) == 0)
    assert [(c["seq"], c["attempt"]) for c in Seen.calls] == [(0, 1), (1, 1), (1, 2), (1, 3), (2, 1), (3, 1)]


async def test_unordered_delivers_up_to_concurrency_at_once_and_skips_a_retry(running: Any) -> None:
    Seen.gate = asyncio.Event()
    queue, _ = running(spec(ordered=False, concurrency=4), messages=10)
    await until(lambda: Seen.under_way == 4)
    assert len(Seen.calls) == 4  # no fifth call while four are under way
    Seen.gate.set()
    await until(lambda: len(queue) == 0)
    assert sorted(c["seq"] for c in Seen.calls) == list(range(10))
    assert Seen.most_at_once == 4


async def test_an_unordered_retry_does_not_hold_back_the_others(running: Any) -> None:
    Seen.fail_until = {0: 2}
    queue, _ = running(spec(ordered=False, concurrency=2, backoff=0.5, max_backoff=0.5), messages=6)
    await until(lambda: len(queue) == 0)
    order = [(c["seq"], c["attempt"]) for c in Seen.calls]
    assert order.index((0, 2)) > order.index((5, 1))  # the others went by while 0 waited for its retry


async def test_a_service_not_deployed_is_a_failure_that_says_so_until_it_is(
    running: Any, invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "splice.server.pubsub.delivery")
    queue, _ = running(spec(service="test.later", backoff=0.01, max_backoff=0.01, delivery_limit=1000), messages=2)
    await until(lambda: any("service 'test.later' is not deployed" in r.getMessage() for r in caplog.records))
    assert len(queue) == 2
    later = type("Later", (Record,), {"name": "test.later", "__module__": __name__})
    invoker.store.swap(set(), [describe(later, __name__, __file__, 2, vars(sys.modules[__name__]))])
    await until(lambda: len(queue) == 0)
    assert [c["seq"] for c in Seen.calls] == [0, 1]


async def test_a_blocking_service_runs_in_a_thread(running: Any) -> None:
    queue, _ = running(spec(service="test.blocking"), messages=5)
    await until(lambda: len(queue) == 0)
    assert [c["seq"] for c in Seen.calls] == list(range(5))


async def test_stop_lets_the_call_under_way_finish_and_gives_back_the_rest(invoker: Invoker) -> None:
    Seen.gate = asyncio.Event()
    queue = MemoryQueue(spec())
    for seq in range(5):
        queue.put(seq, message(seq))
    deliverer = Deliverer(spec(), queue, invoker, Bells())
    deliverer.start()
    await until(lambda: Seen.under_way == 1)
    stopping = asyncio.create_task(deliverer.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # waits for the call under way
    Seen.gate.set()
    await stopping
    assert [c["seq"] for c in Seen.calls] == [0]
    assert len(queue) == 4  # acknowledged the one delivered
    claimed = await queue.claim(10)
    assert [(d.message.data["seq"], d.attempt) for d in claimed] == [(1, 1), (2, 1), (3, 1), (4, 1)]  # not counted


async def test_stop_cancels_a_call_past_its_grace_and_its_message_comes_back_after_the_lease(
    invoker: Invoker,
) -> None:
    Seen.gate = asyncio.Event()  # never set
    queue = MemoryQueue(spec(lease=0.5))
    queue.put(0, message(0))
    deliverer = Deliverer(queue.spec, queue, invoker, Bells())
    deliverer.start()
    await until(lambda: Seen.under_way == 1)
    await deliverer.stop(grace=0.05)
    assert not deliverer.running
    assert await queue.claim(1) == []  # still leased to the call that was cancelled
    claimed = await _claim_when_free(queue)
    assert claimed[0].attempt == 2  # the cancelled call counted as an attempt


async def _claim_when_free(queue: MemoryQueue) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        claimed = await queue.claim(1)
        if claimed:
            return claimed
        await asyncio.sleep(0.02)
    raise AssertionError("the lease never ran out")


async def test_a_doorbell_wakes_an_idle_deliverer_at_once(invoker: Invoker) -> None:
    bells = Bells()
    queue = MemoryQueue(spec())
    deliverer = Deliverer(spec(), queue, invoker, bells)
    deliverer.start()
    try:
        await asyncio.sleep(0.05)  # idle now, waiting for the bell (or its poll a second later)
        queue.put(0, message(0))
        started = time.monotonic()
        bells.ring("sub")
        await until(lambda: Seen.calls)
        assert time.monotonic() - started < 0.9  # well before the poll would have found it
    finally:
        await deliverer.stop()


async def test_bells_ring_only_their_subscription_and_forget() -> None:
    bells = Bells()
    a, b = asyncio.Event(), asyncio.Event()
    bells.listen("a", a)
    bells.listen("b", b)
    bells.ring("a")
    assert a.is_set()
    assert not b.is_set()
    bells.forget("b", b)
    bells.ring_all()
    assert not b.is_set()
    bells.forget("unknown", b)  # harmless


def test_a_pull_subscription_has_no_deliverer(invoker: Invoker) -> None:
    with pytest.raises(ValueError, match="pull subscription"):
        Deliverer(spec(service=None), MemoryQueue(spec()), invoker, Bells())


# -- in-memory queues -------------------------------------------------------------------------------------


async def test_a_memory_queue_skips_expired_messages() -> None:
    queue = MemoryQueue(spec())
    queue.put(1, message(1, expires_us=1))
    queue.put(2, message(2))
    claimed = await queue.claim(10)
    assert [d.message.data["seq"] for d in claimed] == [2]
    assert len(queue) == 1


async def test_each_delivery_decodes_its_own_copy() -> None:
    queue = MemoryQueue(spec())
    queue.put(1, message(1))
    first = (await queue.claim(1))[0]
    first.message.data["seq"] = 99
    await queue.release([first.id])
    again = (await queue.claim(1))[0]
    assert again.message.data == {"seq": 1}
    assert pubsub_message(again, "m-").id == "m-1"


def test_memory_topics_refuse_a_full_queue_and_repeat_keys() -> None:
    topics = MemoryTopics("server1")
    topic = TopicSpec(name="orders.created", persistent=False, max_depth=2)
    first = topics.publish(topic, message(1, key="k"), [spec()])
    assert (first.persistent, first.subscriptions, first.duplicate) == (False, 1, False)
    assert str(first.id).startswith("m-")
    repeat = topics.publish(topic, message(2, key="k"), [spec()])
    assert (repeat.id, repeat.duplicate, repeat.subscriptions) == (first.id, True, 0)
    topics.publish(topic, message(3), [spec()])
    with pytest.raises(PubSubError, match=r"subscription 'sub' of topic 'orders.created' holds 2 messages in memory"):
        topics.publish(topic, message(4), [spec()])
    topics.sync({})
    assert topics.queues == {}


def test_memory_keys_forget_past_their_window_and_beyond_their_limit() -> None:
    keys = MemoryKeys(limit=2)
    assert keys.seen("t", "a", 10**9, 1) is None
    assert keys.seen("t", "a", 10**9, 2) == 1
    assert keys.seen("t", "a", 0, 3) is None  # a window of nothing: remembered no more
    assert keys.seen("t", "b", 10**9, 4) is None
    assert keys.seen("t", "c", 10**9, 5) is None  # over the limit: the oldest goes
    assert keys.seen("t", "b", 10**9, 6) == 4
    assert keys.seen("other", "b", 10**9, 7) is None  # per topic


async def test_a_call_longer_than_its_lease_is_reported(running: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "splice.server.pubsub.delivery")
    Seen.gate = asyncio.Event()
    queue, _ = running(spec(lease=0.05), messages=1)
    await until(lambda: Seen.under_way == 1)
    began = time.monotonic()
    await until(lambda: time.monotonic() - began > 0.1)
    Seen.gate.set()
    await until(lambda: len(queue) == 0)
    warned = [r.getMessage() for r in caplog.records if "longer than the subscription's lease" in r.getMessage()]
    assert len(warned) == 1
    assert "lease of 0.05 s" in warned[0]


async def test_a_long_ordered_batch_acknowledges_as_it_goes(running: Any) -> None:
    Seen.gates = {(3, 1): asyncio.Event(), (4, 1): asyncio.Event()}
    queue, _ = running(spec(), messages=6)
    await until(lambda: Seen.under_way == 1 and Seen.calls[-1]["seq"] == 3)
    began = time.monotonic()
    await until(lambda: time.monotonic() - began > 0.3)
    Seen.gates[3, 1].set()
    await until(lambda: Seen.calls[-1]["seq"] == 4)
    assert len(queue) == 2  # 0 to 3 acknowledged before 4 started (more than ACK_EVERY after the claim)
    Seen.gates[4, 1].set()
    await until(lambda: len(queue) == 0)
    assert [c["seq"] for c in Seen.calls] == list(range(6))


async def test_an_acknowledgement_after_another_holder_took_over_is_reported(
    invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "splice.server.pubsub.delivery")
    Seen.gates = {(0, 1): asyncio.Event()}
    queue = MemoryQueue(spec(lease=0.1))
    queue.put(0, message(0))
    slow, other = (Deliverer(queue.spec, queue, invoker, Bells()) for _ in range(2))
    slow.start()
    await until(lambda: Seen.under_way == 1)
    other.start()  # a second server: it takes the message over once the first one's lease ran out
    try:
        await until(lambda: len(queue) == 0)  # delivered (attempt 2) and acknowledged by the other
        Seen.gates[0, 1].set()
        await until(lambda: slow.delivered == 1)
    finally:
        await slow.stop()
        await other.stop()
    assert [c["attempt"] for c in Seen.calls] == [1, 2]
    warned = [r.getMessage() for r in caplog.records if "acknowledged elsewhere" in r.getMessage()]
    assert len(warned) == 1
    assert "1 of 1 deliveries" in warned[0]
