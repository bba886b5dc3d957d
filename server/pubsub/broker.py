"""The broker every server runs: publish, deliver to push subscriptions, pull, acknowledge. Active-active.

A persistent publish is one ODB transaction: the message and a ready delivery for every subscription whose topic
or pattern matches (``names.matches``), committed before ``publish`` returns. The broker then rings the doorbell
of those subscriptions here (``delivery.Bells``) and sends a ``pubsub`` cluster event so that the other servers
ring theirs; without either, deliverers and pullers look again every ``delivery.POLL`` second.

Every server runs a deliverer for every push subscription (``delivery.Deliverer``): they compete for the same
deliveries through the store's claims, so none is special and a server that dies only delays its claimed
messages until their lease runs out. Pull subscriptions are claimed by ``pull`` (REST, WebSocket) and
acknowledged by ``ack``. Non-persistent topics stay in this server's memory (``memory``).

The store is ``MessageStore`` (the ODB's ``OdbMessages``); if it also takes leases (``Leases``), one server at a
time sweeps expired messages and idempotency keys every ``SWEEP_EVERY`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..core.context import current_cid, new_cid
from ..core.errors import BadRequest, Conflict, NotFound, TooLarge
from ..core.naming import closest
from ..core.pubsub import PublishResult, PubSubError, UnknownTopic
from ._figures import figures
from .delivery import POLL, Bells, Deliverer, Source, StoredDeliveries, now_us, wait_for_bell
from .memory import MemoryTopics
from .names import matches
from .specs import SubscriptionSpec, TopicPermission, TopicSpec
from .store import Delivery, MessageStore, NewMessage, State, encode

if TYPE_CHECKING:
    from ..core.invoker import Invoker

logger = logging.getLogger(__name__)

MAX_PULL = 1000
"""The most messages one pull (or peek) returns."""
MAX_WAIT = 60.0
"""The longest a pull waits for a first message, in seconds."""
DEPTH_TTL = 1.0
"""Seconds the subscriptions' depths read for ``max_depth`` checks are reused (not one query per publish)."""
SWEEP_EVERY = 60.0
"""Seconds between two sweeps of expired messages and old idempotency keys."""
SWEEP_LEASE = "pubsub-sweep"
PULLED_MEMORY = 100_000
"""Deliveries handed out by ``pull`` whose attempt this server remembers (for ``nack``'s backoff)."""
MAX_KEY = 200


class Definitions(Protocol):
    """The cluster's topics, subscriptions and permissions as this server holds them (``runtime.LiveConfig``)."""

    topics: dict[str, TopicSpec]
    subscriptions: dict[str, SubscriptionSpec]
    permissions: dict[str, TopicPermission]


class Events(Protocol):
    """The cluster bus's events (``cluster.member.ClusterMember``)."""

    def send_event(self, kind: str, data: dict[str, Any]) -> None: ...

    def on_event(self, kind: str, handler: Any) -> None: ...


@runtime_checkable
class Leases(Protocol):
    """Cluster-wide leases (``OdbRepository`` has them): who sweeps."""

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool: ...


class _Depths:
    """Ready deliveries per subscription, read at most once per ``DEPTH_TTL`` and counted up by each publish."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.ready: dict[str, int] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def of(self, names: Sequence[str]) -> dict[str, int]:
        if time.monotonic() - self._read_at > DEPTH_TTL:
            async with self._lock:
                if time.monotonic() - self._read_at > DEPTH_TTL:  # not read meanwhile by another publish
                    depths = await self.store.depths(None)
                    self.ready = {name: depth.ready for name, depth in depths.items()}
                    self._read_at = time.monotonic()
        return {name: self.ready.get(name, 0) for name in names}

    def add(self, names: Sequence[str]) -> None:
        for name in names:
            self.ready[name] = self.ready.get(name, 0) + 1


class Broker:
    """This server's part of the cluster's pub/sub: what services, REST and WebSocket clients and the admin API
    publish, pull and acknowledge through, and the deliverers of push subscriptions (run between ``start`` and
    ``stop``, kept in step with the definitions by ``reload``)."""

    def __init__(
        self, definitions: Definitions, store: MessageStore, invoker: Invoker, server: str, events: Events
    ) -> None:
        self.definitions = definitions
        self.store = store
        self.invoker = invoker
        self.server = server
        self.events = events
        self.bells = Bells()
        self.deliverers: dict[tuple[str, str], Deliverer] = {}
        """This server's deliverers by (subscription, ``odb`` or ``memory``)."""
        self.memory = MemoryTopics(server)
        """Non-persistent messages waiting on this server, by push subscription."""
        self._depths = _Depths(store)
        self._retiring: set[asyncio.Task[None]] = set()
        self._pulled: OrderedDict[int, int] = OrderedDict()
        self._pullers = itertools.count(1)
        self._started = False
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None
        events.on_event("pubsub", self._on_event)

    # -- running -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering to push subscriptions (a ``runtime.Background`` part)."""
        self._started, self._closing = True, False
        await self.reload()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_now_and_then(), name="pubsub sweep")

    async def stop(self) -> None:
        """Stop claiming; let deliveries under way finish, give claimed ones back; wake waiting pullers."""
        self._started, self._closing = False, True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        deliverers, self.deliverers = list(self.deliverers.values()), {}
        self.bells.ring_all()
        await asyncio.gather(*(d.stop() for d in deliverers), *set(self._retiring))

    async def reload(self) -> None:
        """After a change of topics or subscriptions (a ``LiveConfig`` listener): a deliverer for every push
        subscription (and one for its in-memory queue if it matches a non-persistent topic); changed ones
        restart, removed ones stop. Nothing here awaits, so two reloads never interleave."""
        self.memory.sync(self.definitions.subscriptions)
        if not self._started:
            return
        wanted = self._wanted()
        for key in set(self.deliverers) - set(wanted):
            logger.info("subscription %s (%s) is gone or no longer pushed: its deliverer stops", *key)
            self._retire(self.deliverers.pop(key))
        for key, spec in wanted.items():
            current = self.deliverers.get(key)
            if current is None or current.spec != spec:
                self._start_deliverer(key, spec, current)

    def _wanted(self) -> dict[tuple[str, str], SubscriptionSpec]:
        volatile = [t.name for t in self.definitions.topics.values() if not t.persistent]
        wanted: dict[tuple[str, str], SubscriptionSpec] = {}
        for spec in self.definitions.subscriptions.values():
            if spec.service is None:
                continue
            wanted[spec.name, "odb"] = spec
            if spec.name in self.memory.queues or any(matches(spec.topic, t) for t in volatile):
                wanted[spec.name, "memory"] = spec
        return wanted

    def _start_deliverer(self, key: tuple[str, str], spec: SubscriptionSpec, current: Deliverer | None) -> None:
        source: Source
        if key[1] == "memory":
            source = self.memory.queue(spec)
        else:
            source = StoredDeliveries(self.store, spec, f"{self.server}:{spec.name}")
        deliverer = Deliverer(spec, source, self.invoker, self.bells)
        self.deliverers[key] = deliverer
        deliverer.start(after=self._retire(current) if current is not None else None)

    def _retire(self, deliverer: Deliverer) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(deliverer.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return task

    async def _on_event(self, data: dict[str, Any], origin: str) -> None:
        """Another server published to these subscriptions: wake their deliverers and pullers here."""
        names = data.get("subscriptions") if isinstance(data, dict) else None
        for name in names if isinstance(names, list) else ():
            if isinstance(name, str):
                self.bells.ring(name)

    def _wake(self, names: Sequence[str]) -> None:
        for name in names:
            self.bells.ring(name)

    async def _sweep_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except Exception:  # the ODB unreachable, say: the next sweep tries again
                logger.exception("sweeping expired pub/sub messages failed; trying again in %s s", SWEEP_EVERY)

    async def sweep(self) -> int:
        """Delete expired deliveries, messages every subscription is done with, and idempotency keys past the
        longest window, if this server holds the sweep's lease; how many rows went."""
        store = self.store
        if isinstance(store, Leases) and not await store.acquire_lease(SWEEP_LEASE, self.server, SWEEP_EVERY * 2.5):
            return 0
        dropped = await store.sweep(now_us())
        if dropped:
            logger.info("pub/sub sweep deleted %s rows: expired deliveries, delivered messages, old keys", dropped)
        return dropped

    # -- publishing ---------------------------------------------------------------------------------------

    def topic(self, name: str) -> TopicSpec:
        """The topic ``name``; ``UnknownTopic`` naming the known ones (and the closest) if there is none."""
        found = self.definitions.topics.get(name)
        if found is None:
            raise UnknownTopic(_missing("topic", name, self.definitions.topics))
        return found

    async def publish(
        self,
        topic: str,
        data: Any,
        *,
        headers: Mapping[str, str] | None = None,
        priority: int = 0,
        expiry: float | None = None,
        key: str | None = None,
        publisher: str = "",
        cid: str = "",
    ) -> PublishResult:
        """Publish ``data`` (JSON-able, or ``bytes``) to ``topic``; returns once a persistent message is committed
        for every subscription it matches. Raises ``UnknownTopic``, ``TooLarge``, ``BadRequest``, ``PubSubError``
        (a subscription full to the topic's ``max_depth``)."""
        spec = self.topic(topic)
        payload, is_json = _encoded(topic, data)
        if len(payload) > spec.max_payload:
            raise TooLarge(
                f"a message of {len(payload)} bytes is over the limit of topic '{topic}' "
                f"(max_payload {spec.max_payload} bytes)"
            )
        checked = _checked_headers(headers)
        _check_options(priority, expiry, key)
        now = now_us()
        lives = expiry if expiry is not None else spec.expiry
        message = NewMessage(
            topic=topic,
            payload=payload,
            is_json=is_json,
            headers=checked,
            priority=priority,
            expires_us=None if lives is None else now + int(lives * 1e6),
            publisher=publisher[:200],
            cid=(cid or _calling_cid())[:64],
            key=key,
            published_us=now,
        )
        matching = [s for s in self.definitions.subscriptions.values() if matches(s.topic, topic)]
        if not spec.persistent:
            return self._publish_in_memory(spec, message, matching)
        names = sorted(s.name for s in matching)
        if names:
            await self._check_depths(spec, names)
        published = await self.store.publish(message, names, int(spec.idempotency_window * 1e6))
        if published.duplicate or not names:
            return PublishResult(published.id, topic, 0, duplicate=published.duplicate)
        self._depths.add(names)
        self._wake(names)
        self.events.send_event("pubsub", {"subscriptions": names})
        return PublishResult(published.id, topic, len(names))

    async def _check_depths(self, spec: TopicSpec, names: Sequence[str]) -> None:
        for name, ready in (await self._depths.of(names)).items():
            if ready >= spec.max_depth:
                raise PubSubError(
                    f"subscription '{name}' of topic '{spec.name}' holds {ready} messages "
                    f"(max_depth {spec.max_depth}): nothing was published"
                )

    def _publish_in_memory(
        self, spec: TopicSpec, message: NewMessage, matching: list[SubscriptionSpec]
    ) -> PublishResult:
        pushed = [s for s in matching if s.service is not None]
        result = self.memory.publish(spec, message, pushed)
        if result.subscriptions:
            for subscription in pushed:
                if self._started and (subscription.name, "memory") not in self.deliverers:
                    self._start_deliverer((subscription.name, "memory"), subscription, None)
            self._wake([s.name for s in pushed])
        return result

    # -- pulling ------------------------------------------------------------------------------------------

    def subscription(self, name: str) -> SubscriptionSpec:
        """The subscription ``name``; ``NotFound`` naming the known ones (and the closest) if there is none."""
        found = self.definitions.subscriptions.get(name)
        if found is None:
            raise NotFound(_missing("subscription", name, self.definitions.subscriptions))
        return found

    def _pulled_subscription(self, name: str) -> SubscriptionSpec:
        spec = self.subscription(name)
        if spec.service is not None:
            raise Conflict(
                f"subscription '{name}' delivers to service '{spec.service}': it cannot be pulled "
                "(make a subscription without a service to pull messages)"
            )
        return spec

    async def pull(self, subscription: str, limit: int = 10, wait: float = 0.0, holder: str = "") -> list[Delivery]:
        """Claim up to ``limit`` messages of a pull subscription, waiting up to ``wait`` seconds for the first.

        ``limit`` is capped at ``MAX_PULL``, ``wait`` at ``MAX_WAIT``. Each message is the caller's for the
        subscription's ``lease`` seconds: ``ack`` it, or ``nack`` it to have it retried after the backoff; one
        neither acknowledged nor given back is delivered again when its lease runs out. ``holder`` names the
        claimer (default: one of its own per call); an ordered subscription gives messages to one holder at
        a time, and only once it acknowledged what it holds."""
        spec = self._pulled_subscription(subscription)
        limit = min(max(int(limit), 1), MAX_PULL)
        wait = min(max(float(wait), 0.0), MAX_WAIT)
        holder = holder or f"{self.server}:pull-{next(self._pullers)}"
        lease_us = int(spec.lease * 1e6)
        deadline = time.monotonic() + wait
        bell = asyncio.Event()
        self.bells.listen(spec.name, bell)
        try:
            while True:
                bell.clear()
                claimed = await self.store.claim(spec.name, limit, holder, lease_us, spec.ordered, spec.delivery_limit)
                left = deadline - time.monotonic()
                if claimed or left <= 0 or self._closing:
                    self._remember(claimed)
                    return claimed
                await wait_for_bell(bell, min(left, POLL))
        finally:
            self.bells.forget(spec.name, bell)

    def _remember(self, claimed: Sequence[Delivery]) -> None:
        for delivery in claimed:
            self._pulled[delivery.id] = delivery.attempt
        while len(self._pulled) > PULLED_MEMORY:
            self._pulled.popitem(last=False)

    async def ack(self, subscription: str, ids: Sequence[int]) -> int:
        """Acknowledge deliveries (they are done); how many of ``ids`` the subscription had."""
        self.subscription(subscription)
        if not ids:
            return 0
        for delivery_id in ids:
            self._pulled.pop(delivery_id, None)
        return await self.store.ack(subscription, ids)

    async def release(self, subscription: str, ids: Sequence[int]) -> None:
        """Give claimed deliveries back at once, their attempt not counted (a reader going away before it started
        on them): the next claim takes them, here or on another server."""
        self.subscription(subscription)
        if ids:
            for delivery_id in ids:
                self._pulled.pop(delivery_id, None)
            await self.store.release(subscription, ids)
            self._wake([subscription])
            self.events.send_event("pubsub", {"subscriptions": [subscription]})

    async def nack(self, subscription: str, ids: Sequence[int], error: str = "") -> int:
        """Give deliveries back as failed: retried after the subscription's backoff, dead past its limit. How many
        of ``ids`` the subscription had waiting."""
        spec = self.subscription(subscription)
        attempts = await self._attempts(spec, ids)
        why = (error or "given back by its reader")[:2000]
        now = now_us()
        for delivery_id, attempt in attempts.items():
            retry_at = None if attempt >= spec.delivery_limit else now + int(spec.retry_delay(attempt) * 1e6)
            await self.store.fail(spec.name, delivery_id, why, retry_at)
        return len(attempts)

    async def _attempts(self, spec: SubscriptionSpec, ids: Sequence[int]) -> dict[int, int]:
        """The attempt each of ``ids`` is at: remembered from this server's pulls, else read (one query)."""
        wanted = set(ids)
        found = {i: self._pulled.pop(i) for i in wanted if i in self._pulled}
        unknown = wanted - set(found)
        if unknown:
            for delivery in await self.store.peek(spec.name, "ready", MAX_PULL, after=min(unknown) - 1):
                if delivery.id in unknown:
                    found[delivery.id] = delivery.attempt
        return found

    # -- looking at queues ----------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Topics and subscriptions with their depths (one query): ``{"topics": [...], "subscriptions": [...]}``
        (``_figures.figures`` says what a row holds)."""
        depths = await self.store.depths(None)
        return figures(self.definitions.topics, self.definitions.subscriptions, depths, self.memory.queues, now_us())

    async def peek(self, subscription: str, state: State = "ready", limit: int = 20, after: int = 0) -> list[Delivery]:
        """Messages of ``subscription`` in ``state``, in delivery order, without claiming them."""
        self.subscription(subscription)
        return await self.store.peek(subscription, state, min(max(int(limit), 1), MAX_PULL), after)

    async def purge(self, subscription: str, state: State | None = None) -> int:
        """Delete the subscription's messages in ``state`` (``None``: all, its in-memory ones here too)."""
        self.subscription(subscription)
        gone = await self.store.purge(subscription, state)
        queue = self.memory.queues.get(subscription)
        if queue is not None and state != "dead":
            gone += queue.clear()
        return gone

    async def replay(self, subscription: str, ids: Sequence[int] | None = None) -> int:
        """Make dead letters (these, or all) ready again, their attempts counted afresh; how many."""
        self.subscription(subscription)
        replayed = await self.store.replay(subscription, ids)
        if replayed:
            self._wake([subscription])
            self.events.send_event("pubsub", {"subscriptions": [subscription]})
        return replayed


def _calling_cid() -> str:
    """The cid of the call publishing (a service's), else a new one: every message's deliveries carry one."""
    cid = current_cid.get()
    return cid if cid != "-" else new_cid()


def _encoded(topic: str, data: Any) -> tuple[bytes, bool]:
    try:
        return encode(data)
    except (TypeError, ValueError) as exc:
        raise BadRequest(
            f"a message for topic '{topic}' must be JSON (dict, list, str, number, bool, None) or bytes: {exc}"
        ) from exc


def _checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if not headers:
        return {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest(f"message headers are text: header {name!r} is {type(value).__name__} {value!r}")
    return dict(headers)


def _check_options(priority: int, expiry: float | None, key: str | None) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or not -(2**31) <= priority < 2**31:
        raise BadRequest(f"priority must be a whole number between -2147483648 and 2147483647, not {priority!r}")
    if expiry is not None and not 0 < expiry <= 365 * 86400:
        raise BadRequest(f"expiry must be seconds above 0 and at most a year, not {expiry!r}")
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise BadRequest(f"an idempotency key is 1 to {MAX_KEY} characters long, not {len(key)}")


def _missing(what: str, name: str, known: Iterable[str]) -> str:
    """``no topic named 'x' (did you mean 'y'?); topics: a, b``: what an unknown topic or subscription answers."""
    names = sorted(known)
    hint = closest(name, names)
    listed = ", ".join(names) if names else "none yet"
    return f"no {what} named '{name}'" + (f" (did you mean '{hint}'?)" if hint else "") + f"; {what}s: {listed}"


__all__ = ["MAX_PULL", "MAX_WAIT", "Broker", "Definitions", "Events", "Leases"]
