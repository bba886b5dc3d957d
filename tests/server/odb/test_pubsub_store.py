"""``OdbMessages`` (the broker's ``MessageStore``) on every ODB backend: publish, claim, ack, fail, dead letters.

Two repositories on two engines stand for two servers claiming from one subscription at once: they never hold
the same delivery together, and between them they take every one. Where a test needs time to pass (a lease or a
retry's backoff running out, an idempotency window closing) it moves the store's clock, never sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from splice.server.odb import OdbRepository
from splice.server.odb import _pubsub_claim as claiming
from splice.server.odb import pubsub as pubsub_module
from splice.server.odb.models import Delivery as DeliveryRow
from splice.server.odb.models import Message as MessageRow
from splice.server.odb.models import MessageKey
from splice.server.odb.models import Subscription as SubscriptionRow
from splice.server.pubsub.store import Delivery, NewMessage, Published, encode

SECOND = 1_000_000
LEASE = 30 * SECOND
WINDOW = 3600 * SECOND


class Clock:
    """The store's clock, moved by hand (both modules that read it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = claiming.now_us()
        monkeypatch.setattr(claiming, "now_us", lambda: self.now)
        monkeypatch.setattr(pubsub_module, "now_us", lambda: self.now)

    def advance(self, us: int) -> None:
        self.now += us


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


async def publish(
    odb: OdbRepository,
    data: Any,
    subscriptions: Sequence[str] = ("sub",),
    topic: str = "orders.created",
    window: int = WINDOW,
    **fields: Any,
) -> Published:
    payload, is_json = encode(data)
    message = NewMessage(topic=topic, payload=payload, is_json=is_json, **fields)
    return await odb.publish(message, subscriptions, window)


async def claim(
    odb: OdbRepository,
    limit: int = 10,
    subscription: str = "sub",
    holder: str = "server-1",
    ordered: bool = False,
    delivery_limit: int = 5,
    lease: int = LEASE,
) -> list[Delivery]:
    return await odb.claim(subscription, limit, holder, lease, ordered, delivery_limit)


def data_of(deliveries: Sequence[Delivery]) -> list[Any]:
    return [d.message.data for d in deliveries]


async def count(odb: OdbRepository, table: Any) -> int:
    async with odb.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)


async def test_publish_claim_ack(odb: OdbRepository) -> None:
    published = await publish(
        odb, {"order": 1}, ["audit", "billing"], headers={"h": "v"}, priority=2, publisher="svc", cid="c1"
    )
    assert published.id > 0
    assert not published.duplicate
    [first] = await claim(odb, subscription="audit", holder="server-1")
    assert first.message.id == published.id
    assert first.message.data == {"order": 1}
    assert (first.message.topic, first.message.headers, first.message.priority) == ("orders.created", {"h": "v"}, 2)
    assert (first.message.publisher, first.message.cid, first.message.key) == ("svc", "c1", None)
    assert first.message.published_us > 0
    assert (first.attempt, first.holder, first.state, first.subscription) == (1, "server-1", "ready", "audit")
    assert first.lease_until_us > first.message.published_us
    assert await claim(odb, subscription="audit") == []  # leased
    assert data_of(await claim(odb, subscription="billing")) == [{"order": 1}]  # each subscription has its own
    assert await odb.ack("audit", [first.id]) == 1
    assert await odb.ack("audit", [first.id]) == 0
    assert await odb.ack("billing", [first.id]) == 0  # another subscription's id is not this one's
    depths = await odb.depths(["audit", "billing"])
    assert (depths["audit"].ready, depths["audit"].in_flight) == (0, 0)
    assert (depths["billing"].ready, depths["billing"].in_flight) == (0, 1)


async def test_nothing_to_claim(odb: OdbRepository) -> None:
    assert await claim(odb) == []
    assert await claim(odb, ordered=True) == []
    await publish(odb, 1)
    assert await claim(odb, limit=0) == []
    assert await odb.ack("sub", []) == 0


async def test_no_subscriptions_stores_nothing(odb: OdbRepository) -> None:
    assert await publish(odb, {"a": 1}, []) == Published(0)
    assert await publish(odb, {"a": 1}, [], key="k") == Published(0)
    assert await count(odb, MessageRow) == 0
    assert await count(odb, DeliveryRow) == 0
    assert await count(odb, MessageKey) == 0


async def test_one_delivery_per_subscription_named(odb: OdbRepository) -> None:
    await publish(odb, 1, ["a", "b", "a"])
    assert await count(odb, MessageRow) == 1
    assert await count(odb, DeliveryRow) == 2


@pytest.mark.parametrize("ordered", [False, True])
async def test_priority_then_publish_order(odb: OdbRepository, ordered: bool) -> None:
    for n, priority in enumerate([0, 5, 1, 5, 0]):
        await publish(odb, n, priority=priority)
    assert data_of(await claim(odb, limit=10, ordered=ordered)) == [1, 3, 2, 0, 4]


async def test_ordered_one_holder_at_a_time(odb: OdbRepository) -> None:
    for n in range(3):
        await publish(odb, n)
    [first] = await claim(odb, limit=1, ordered=True, holder="a")
    assert first.message.data == 0
    assert await claim(odb, limit=5, ordered=True, holder="b") == []  # a holds one: nobody else claims
    assert await odb.ack("sub", [first.id]) == 1
    assert data_of(await claim(odb, limit=5, ordered=True, holder="b")) == [1, 2]


async def test_ordered_retry_holds_back_the_rest(odb: OdbRepository, clock: Clock) -> None:
    for n in range(3):
        await publish(odb, n)
    [first] = await claim(odb, limit=1, ordered=True)
    await odb.fail("sub", first.id, "service said no", clock.now + 5 * SECOND)
    assert await claim(odb, limit=5, ordered=True) == []  # 0 waits for its retry; 1 and 2 wait behind it
    assert data_of(await claim(odb, limit=1, ordered=False)) == [1]  # unordered, nothing holds back
    clock.advance(5 * SECOND)
    assert await claim(odb, limit=5, ordered=True) == []  # 1 is leased (by the unordered claim)
    clock.advance(LEASE)  # ... until its lease runs out
    again = await claim(odb, limit=5, ordered=True)
    assert data_of(again) == [0, 1, 2]
    assert [d.attempt for d in again] == [2, 2, 1]
    assert again[0].last_error == "service said no"


async def test_ordered_claim_stops_at_a_retry_behind_due_ones(odb: OdbRepository, clock: Clock) -> None:
    for n in range(3):
        await publish(odb, n)
    [_, second, _] = await claim(odb, limit=3, ordered=True)
    await odb.release("sub", [d.id for d in await odb.peek("sub", "ready", 10) if d.id != second.id])
    await odb.fail("sub", second.id, "later", clock.now + SECOND)
    assert data_of(await claim(odb, limit=5, ordered=True)) == [0]


async def test_unordered_claims_share_out(odb: OdbRepository) -> None:
    for n in range(5):
        await publish(odb, n)
    a = await claim(odb, limit=2, holder="a")
    b = await claim(odb, limit=2, holder="b")
    c = await claim(odb, limit=10, holder="c")
    assert (data_of(a), data_of(b), data_of(c)) == ([0, 1], [2, 3], [4])
    assert await claim(odb, holder="d") == []


async def test_expired_messages_are_skipped_and_dropped(odb: OdbRepository, clock: Clock) -> None:
    await publish(odb, "old", expires_us=clock.now + SECOND, priority=1)
    await publish(odb, "fresh", expires_us=clock.now + 60 * SECOND)
    await publish(odb, "forever")
    clock.advance(2 * SECOND)
    assert data_of(await claim(odb, limit=1, ordered=True)) == ["fresh"]
    assert (await odb.depths(["sub"]))["sub"].ready == 1  # "old" went, "forever" waits
    clock.advance(60 * SECOND)
    assert data_of(await claim(odb, limit=5)) == ["forever"]


async def test_expired_ones_do_not_count_against_the_limit(odb: OdbRepository, clock: Clock) -> None:
    for n in range(4):
        await publish(odb, n, expires_us=clock.now + SECOND, priority=1)
    await publish(odb, "kept")
    clock.advance(2 * SECOND)
    assert data_of(await claim(odb, limit=2)) == ["kept"]
    assert await count(odb, DeliveryRow) == 1


async def test_dead_after_the_limit_through_fail(odb: OdbRepository, clock: Clock) -> None:
    await publish(odb, "poison")
    [first] = await claim(odb, delivery_limit=2)
    await odb.fail("sub", first.id, "boom 1", clock.now)
    [second] = await claim(odb, delivery_limit=2)
    assert (second.id, second.attempt, second.last_error) == (first.id, 2, "boom 1")
    await odb.fail("sub", second.id, "boom 2", None)
    assert await claim(odb, delivery_limit=2) == []
    [dead] = await odb.peek("sub", "dead", 10)
    assert (dead.id, dead.state, dead.attempt, dead.last_error, dead.holder) == (first.id, "dead", 2, "boom 2", None)
    depth = (await odb.depths(["sub"]))["sub"]
    assert (depth.ready, depth.in_flight, depth.dead, depth.oldest_us) == (0, 0, 1, None)


async def test_lease_running_out(odb: OdbRepository, clock: Clock) -> None:
    """A holder that stops answering: its delivery is claimed again (at-least-once), then dead at the limit."""
    await publish(odb, "job")
    [first] = await claim(odb, holder="dies", delivery_limit=2, lease=SECOND)
    assert await claim(odb, holder="other", delivery_limit=2) == []
    clock.advance(SECOND)
    [again] = await claim(odb, holder="other", delivery_limit=2, lease=SECOND)
    assert (again.id, again.attempt, again.holder) == (first.id, 2, "other")
    clock.advance(SECOND)
    assert await claim(odb, holder="third", delivery_limit=2, ordered=True) == []
    [dead] = await odb.peek("sub", "dead", 10)
    assert dead.last_error == "its holder stopped answering after 2 attempts"
    assert await odb.ack("sub", [first.id]) == 1  # a late acknowledgement still removes it


async def test_release_gives_back_without_counting(odb: OdbRepository) -> None:
    await publish(odb, "x")
    [first] = await claim(odb, ordered=True)
    await odb.release("sub", [first.id])
    [again] = await claim(odb, ordered=True, holder="other")
    assert (again.id, again.attempt, again.last_error) == (first.id, 1, None)


async def test_replay_dead_letters(odb: OdbRepository) -> None:
    for n in range(3):
        await publish(odb, n)
    for delivery in await claim(odb):
        await odb.fail("sub", delivery.id, f"failed {delivery.message.data}", None)
    dead = await odb.peek("sub", "dead", 10)
    assert data_of(dead) == [0, 1, 2]
    assert await odb.replay("sub", [dead[1].id]) == 1
    assert await odb.replay("sub", []) == 0
    [replayed] = await claim(odb)
    assert (replayed.message.data, replayed.attempt, replayed.last_error) == (1, 1, None)
    assert await odb.replay("sub", None) == 2
    assert data_of(await claim(odb)) == [0, 2]
    assert await odb.peek("sub", "dead", 10) == []


async def test_purge(odb: OdbRepository) -> None:
    for n in range(4):
        await publish(odb, n, ["sub", "kept"])
    [first] = await claim(odb, limit=1)
    await odb.fail("sub", first.id, "x", None)
    assert await odb.purge("sub", "dead") == 1
    assert await odb.purge("sub", "dead") == 0
    assert await odb.purge("sub", "ready") == 3
    await publish(odb, 9, ["sub"])
    [second] = await claim(odb, limit=1)
    await odb.fail("sub", second.id, "x", None)
    await publish(odb, 10, ["sub"])
    assert await odb.purge("sub", None) == 2
    assert (await odb.depths(["kept"]))["kept"].ready == 4


async def test_peek_does_not_claim(odb: OdbRepository) -> None:
    ids = [(await publish(odb, n, priority=n % 2)).id for n in range(5)]
    peeked = await odb.peek("sub", "ready", 10)
    assert data_of(peeked) == [1, 3, 0, 2, 4]
    assert all(d.attempt == 0 and d.holder is None for d in peeked)
    assert data_of(await odb.peek("sub", "ready", 2)) == [1, 3]
    assert data_of(await odb.peek("sub", "ready", 10, after=peeked[1].id)) == [0, 2, 4]  # the next page
    assert data_of(await odb.peek("sub", "ready", 10, after=peeked[3].id)) == [4]
    assert [d.message.id for d in peeked] == [ids[1], ids[3], ids[0], ids[2], ids[4]]
    assert await odb.ack("sub", [peeked[1].id]) == 1
    assert data_of(await odb.peek("sub", "ready", 10, after=peeked[1].id)) == [4]  # gone: the ids above it
    [claimed] = await claim(odb, limit=1)
    assert (await odb.peek("sub", "ready", 1))[0].holder == claimed.holder  # claimed ones are still ready
    assert await odb.peek("sub", "dead", 10) == []


async def test_depths(odb: OdbRepository, clock: Clock) -> None:
    first = clock.now
    for n in range(4):
        await publish(odb, n, ["a", "b"], published_us=first + n)
    await publish(odb, "other", ["c"])
    [claimed] = await claim(odb, limit=1, subscription="a")
    [dead] = await claim(odb, limit=1, subscription="a")
    await odb.fail("a", dead.id, "x", None)
    await odb.ack("b", [d.id for d in await claim(odb, limit=1, subscription="b")])
    depths = await odb.depths(["a", "b", "none"])
    assert set(depths) == {"a", "b", "none"}
    a, b, none = depths["a"], depths["b"], depths["none"]
    assert (a.ready, a.in_flight, a.dead, a.oldest_us) == (2, 1, 1, first)
    assert (b.ready, b.in_flight, b.dead, b.oldest_us) == (3, 0, 0, first + 1)
    assert (none.ready, none.in_flight, none.dead, none.oldest_us) == (0, 0, 0, None)
    assert set(await odb.depths()) == {"a", "b", "c"}
    clock.advance(LEASE)
    assert ((await odb.depths(["a"]))["a"].ready, claimed.attempt) == (3, 1)  # its lease ran out: waiting again


async def test_idempotency_key(odb: OdbRepository, clock: Clock) -> None:
    first = await publish(odb, 1, key="order-1", window=10 * SECOND)
    again = await publish(odb, 2, key="order-1", window=10 * SECOND)
    assert again == Published(first.id, duplicate=True)
    other_topic = await publish(odb, 3, key="order-1", topic="orders.paid", window=10 * SECOND)
    assert not other_topic.duplicate
    clock.advance(11 * SECOND)
    later = await publish(odb, 4, key="order-1", window=10 * SECOND)
    assert not later.duplicate
    assert later.id not in (first.id, other_topic.id)
    assert await publish(odb, 5, key="order-1", window=10 * SECOND) == Published(later.id, duplicate=True)
    assert data_of(await claim(odb)) == [1, 3, 4]
    assert (await odb.peek("sub", "ready", 10))[0].message.key == "order-1"
    assert await count(odb, MessageKey) == 2


async def test_idempotency_key_published_at_once(odb: OdbRepository, other: OdbRepository) -> None:
    results = await asyncio.gather(*(publish(store, n, key="same") for n, store in enumerate([odb, other] * 4)))
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await count(odb, DeliveryRow) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xffbinary",
        b"",
        {"nested": [1, 2.5, None, True, "\u00e9\u4e2d"]},
        "text",
        None,
        [1, 2],
    ],
)
async def test_payloads_round_trip(odb: OdbRepository, data: Any) -> None:
    await publish(odb, data)
    [delivery] = await claim(odb)
    assert delivery.message.data == data
    assert type(delivery.message.data) is type(data)


async def test_five_megabyte_payload(odb: OdbRepository) -> None:
    data = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    await publish(odb, data)
    [delivery] = await claim(odb)
    assert delivery.message.data == data
    assert delivery.message.size == 5 * 1024 * 1024


async def test_sweep(odb: OdbRepository, clock: Clock) -> None:
    await publish(odb, "expires", ["a", "b"], expires_us=clock.now + SECOND)
    await publish(odb, "acked", ["a"])
    await publish(odb, "dead", ["a"], expires_us=clock.now + 100 * SECOND)
    await publish(odb, "waits", ["a"], key="k")
    deliveries = {d.message.data: d for d in await claim(odb, subscription="a")}
    await odb.ack("a", [deliveries["acked"].id])
    await odb.fail("a", deliveries["dead"].id, "x", None)
    clock.advance(2 * SECOND)
    # two expired deliveries, then the expired and the acknowledged messages
    assert await odb.sweep(clock.now) == 4
    assert await count(odb, MessageRow) == 2
    assert await odb.sweep(clock.now) == 0
    clock.advance(200 * SECOND)
    assert await odb.sweep(clock.now) == 2  # the dead letter's message expired: its delivery and the message
    assert await count(odb, MessageKey) == 1
    assert await odb.sweep(clock.now + pubsub_module.KEY_RETENTION_US + 1) == 1
    assert data_of(await odb.peek("a", "ready", 10)) == ["waits"]


async def test_sweep_in_batches(odb: OdbRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pubsub_module, "SWEEP_BATCH", 3)
    for n in range(8):
        await publish(odb, n)
    await publish(odb, "kept", ["other"])
    await odb.ack("sub", [d.id for d in await claim(odb)])
    assert await odb.sweep(claiming.now_us()) == 8
    assert await count(odb, MessageRow) == 1


async def test_ordered_claim_of_a_defined_subscription(odb: OdbRepository) -> None:
    """The ordered claim locks the subscription's row when it has one (not only the fallback)."""
    async with odb.engine.begin() as conn:
        values = {"cluster_id": odb.cluster_id, "name": "sub", "topic": "orders.*", "service": None, "config": {}}
        await conn.execute(insert(SubscriptionRow).values(**values))
    for n in range(3):
        await publish(odb, n)
    assert data_of(await claim(odb, limit=2, ordered=True)) == [0, 1]
    assert await claim(odb, limit=2, ordered=True) == []


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("defined", [False, True])
async def test_servers_claiming_at_once(odb: OdbRepository, other: OdbRepository, ordered: bool, defined: bool) -> None:
    """Two servers claim one subscription concurrently: no delivery is held by two, and together they take all.

    Ordered, one claimer at a time holds deliveries, in order."""
    if defined:
        async with odb.engine.begin() as conn:
            values = {"cluster_id": odb.cluster_id, "name": "sub", "topic": "t", "service": None, "config": {}}
            await conn.execute(insert(SubscriptionRow).values(**values))
    total = 60
    for n in range(total):
        await publish(odb, n)
    holders = itertools.count()
    taken: list[int] = []
    seen: list[Any] = []
    while len(taken) < total:
        stores = [odb, other] * 4
        batches = await asyncio.gather(
            *(claim(store, limit=3, holder=f"h{next(holders)}", ordered=ordered) for store in stores)
        )
        held = [d for batch in batches for d in batch]
        assert len({d.id for d in held}) == len(held), "a delivery was claimed twice while leased"
        if ordered:
            assert sum(1 for batch in batches if batch) <= 1, "two holders at once on an ordered subscription"
        taken += [d.id for d in held]
        seen += [d.message.data for d in held]
        for store, batch in zip(stores, batches, strict=True):
            if batch:
                assert await store.ack("sub", [d.id for d in batch]) == len(batch)
    assert len(taken) == len(set(taken)) == total
    assert sorted(seen) == list(range(total))
    if ordered:
        assert seen == list(range(total))
    assert await count(odb, DeliveryRow) == 0
