"""Push delivery: one deliverer per push subscription on every server, invoking its service once per message.

A deliverer claims deliveries from a ``Source`` (the ODB's deliveries of its subscription, or this server's
in-memory queue of non-persistent messages), invokes the subscription's service with each message, acknowledges
the ones whose call succeeded and fails the others (retried after the subscription's backoff, dead-lettered at its
delivery limit). Every server runs one for every push subscription: they compete for the same deliveries, and
the store gives each to one holder at a time.

- Ordered (the default): a batch of up to ``ORDERED_BATCH`` in order, one call at a time. The first failure ends
  the batch: it is failed, the rest given back (``release``), and its backoff holds back the ones behind it.
- Not ordered: up to ``concurrency`` calls under way at once on this server.

Acknowledgements are flushed together (one transaction) after the calls of a round (and every ``ACK_EVERY``
seconds of a long ordered batch), never before a call succeeded: a server that dies in between delivers those
messages again (at-least-once).

Leases are never renewed: a claim holds its deliveries for the subscription's ``lease`` seconds, which must be
longer than one call takes. An ordered batch stops starting calls once half the lease has gone by, flushes its
acknowledgements and gives the rest back, so that no call starts on a delivery whose lease may run out under it.
A call longer than the lease may be delivered a second time by another server while it still runs.

When idle a deliverer waits for its doorbell (``Bells``: a publish on this server, or a "pubsub" event from
another) or ``POLL`` seconds, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ..core.context import new_cid
from ..core.errors import ServiceNotFound, SpliceError
from ..core.pubsub import PubSubMessage
from ..core.service import Request
from .specs import SubscriptionSpec
from .store import Delivery, MessageStore, moment

if TYPE_CHECKING:
    from ..core.invoker import Invoker

logger = logging.getLogger(__name__)

POLL = 1.0
"""Seconds an idle deliverer or a waiting puller sleeps before looking again without a doorbell."""
ORDERED_BATCH = 50
"""Deliveries an ordered deliverer claims at once (then invokes one after the other)."""
ACK_EVERY = 0.2
"""Seconds an ordered batch goes at most without acknowledging what it delivered: what a server killed mid-batch
delivers twice (once here, once by the server taking over) is about that much of its work, not a whole batch."""
MAX_ERROR = 2000
"""Characters of an error kept in a delivery's ``last_error``."""
GRACE = 5.0
"""Seconds ``stop`` lets calls under way finish before cancelling them."""


def now_us() -> int:
    return time.time_ns() // 1000


class Bells:
    """Doorbells by subscription: whoever waits for a subscription's messages listens with an ``asyncio.Event``;
    ``ring`` sets every listener's. A listener clears its event *before* it looks for work, so a ring between the
    look and the wait is never missed."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = {}

    def listen(self, subscription: str, event: asyncio.Event) -> None:
        self._listeners.setdefault(subscription, set()).add(event)

    def forget(self, subscription: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(subscription)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[subscription]

    def ring(self, subscription: str) -> None:
        for event in self._listeners.get(subscription, ()):
            event.set()

    def ring_all(self) -> None:
        for listeners in self._listeners.values():
            for event in listeners:
                event.set()


async def wait_for_bell(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


async def wait_for_any(events: tuple[asyncio.Event, ...], timeout: float) -> bool:
    """Wait until one of ``events`` is set or ``timeout`` seconds passed; whether one was set."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


class Source(Protocol):
    """Where a deliverer takes its subscription's deliveries from (the ODB, or this server's memory)."""

    kind: str
    """``odb`` or ``memory`` (in logs, and the deliverer's key)."""
    id_prefix: str
    """Put before a message's id in ``request.pubsub.id`` (``m-`` for in-memory messages)."""

    async def claim(self, limit: int) -> list[Delivery]: ...

    async def ack(self, ids: Sequence[int]) -> int:
        """How many of ``ids`` were still there to acknowledge."""
        ...

    async def fail(self, delivery: Delivery, error: str, retry_at_us: int | None) -> None: ...

    async def release(self, ids: Sequence[int]) -> None: ...


class StoredDeliveries:
    """A subscription's deliveries in the ODB, claimed by one holder (this server's deliverer of it)."""

    kind = "odb"
    id_prefix = ""

    def __init__(self, store: MessageStore, spec: SubscriptionSpec, holder: str) -> None:
        self.store = store
        self.spec = spec
        self.holder = holder

    async def claim(self, limit: int) -> list[Delivery]:
        spec = self.spec
        lease_us = int(spec.lease * 1e6)
        return await self.store.claim(spec.name, limit, self.holder, lease_us, spec.ordered, spec.delivery_limit)

    async def ack(self, ids: Sequence[int]) -> int:
        return await self.store.ack(self.spec.name, ids)

    async def fail(self, delivery: Delivery, error: str, retry_at_us: int | None) -> None:
        await self.store.fail(self.spec.name, delivery.id, error, retry_at_us)

    async def release(self, ids: Sequence[int]) -> None:
        if ids:
            await self.store.release(self.spec.name, ids)


def pubsub_message(delivery: Delivery, id_prefix: str = "") -> PubSubMessage:
    """What ``self.request.pubsub`` shows a service of the delivery it receives."""
    message = delivery.message
    return PubSubMessage(
        id=f"{id_prefix}{message.id}" if id_prefix else message.id,
        topic=message.topic,
        subscription=delivery.subscription,
        delivery=delivery.id,
        attempt=delivery.attempt,
        headers=dict(message.headers),
        priority=message.priority,
        publisher=message.publisher,
        cid=message.cid,
        key=message.key,
        published_at=moment(message.published_us),
        expires_at=moment(message.expires_us),
    )


class Deliverer:
    """Delivers one push subscription's messages from one source on this server, until stopped."""

    def __init__(self, spec: SubscriptionSpec, source: Source, invoker: Invoker, bells: Bells) -> None:
        if spec.service is None:
            raise ValueError(f"subscription '{spec.name}' is a pull subscription: nothing delivers it")
        self.spec = spec
        self.service: str = spec.service
        self.source = source
        self.invoker = invoker
        self.bells = bells
        self.delivered = 0
        """Calls that succeeded (and were acknowledged, or are about to be)."""
        self.failed = 0
        self._bell = asyncio.Event()
        """Set by the subscription's doorbell (a publish here or on another server) and by ``stop``."""
        self._ended = asyncio.Event()
        """Set when a call of an unordered subscription ends (a slot is free, an acknowledgement waits)."""
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._acks: list[int] = []
        self._before: asyncio.Task[None] | None = None
        self._retry_us: int | None = None
        """When the soonest retry this deliverer scheduled falls due (it looks again then, not a poll later)."""

    def __repr__(self) -> str:
        return f"Deliverer({self.spec.name!r}, {self.source.kind})"

    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Start delivering; with ``after`` (the stopping of the deliverer this one replaces), once it is done: two
        deliverers of one subscription on one server share a holder name, so they must not overlap."""
        self._before = after
        self.bells.listen(self.spec.name, self._bell)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pubsub deliverer {self.spec.name}")

    async def stop(self, grace: float = GRACE) -> None:
        """Claim nothing more; let calls under way finish (``grace`` seconds, then cancel them: their deliveries
        come back when their lease runs out); give back what was claimed but not started."""
        self._stopping = True
        self._bell.set()
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done and self._calls:  # unordered: cancel the calls, let the loop acknowledge what succeeded
            for call in list(self._calls):
                call.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:  # ordered (its call runs in the loop), or the loop is stuck
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.bells.forget(self.spec.name, self._bell)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        if self._before is not None:
            await asyncio.wait({self._before})  # never raises: the old deliverer's stop logs its own trouble
            self._before = None
        failures = 0
        while not self._stopping:
            self._bell.clear()  # before claiming: a publish from here on rings again
            try:
                busy = await (self._ordered_round() if self.spec.ordered else self._unordered_round())
                failures = 0
            except Exception as exc:  # the ODB unreachable, say: a deliverer never dies of it, it tries again
                failures += 1
                if failures == 1:
                    logger.exception(
                        "subscription %s: delivering from %s failed; trying again", self.spec.name, self.source.kind
                    )
                else:  # one traceback per outage is enough
                    logger.warning(
                        "subscription %s: delivering from %s failed again (%s times): %s",
                        self.spec.name,
                        self.source.kind,
                        failures,
                        exc,
                    )
                busy = False
            if not busy and not self._stopping:
                await wait_for_bell(self._bell, self._idle(failures))
        await self._finish()

    def _idle(self, failures: int) -> float:
        """Seconds to wait for the doorbell: ``POLL``, sooner when a retry of ours falls due, longer after the
        store failed (up to ten times)."""
        if failures:
            return POLL * min(failures + 1, 10)
        if self._retry_us is None:
            return POLL
        left = (self._retry_us - now_us()) / 1e6
        if left <= 0:
            self._retry_us = None
            return 0.0
        return min(POLL, left)

    async def _ordered_round(self) -> bool:
        """Claim a batch and deliver it in order; whether to claim again at once (a full batch: more may wait; a
        batch cut short). After a smaller batch nothing else was due: the doorbell says when something is."""
        batch = await self.source.claim(ORDERED_BATCH)
        if not batch:
            return False
        started = flushed = time.monotonic()
        half_lease = self.spec.lease / 2
        for i, delivery in enumerate(batch):
            now = time.monotonic()
            if self._stopping or now - started > half_lease:
                await self._flush()
                await self.source.release([d.id for d in batch[i:]])
                return True
            if now - flushed > ACK_EVERY:
                await self._flush()
                flushed = now
            if not await self._deliver(delivery):
                await self._flush()
                await self.source.release([d.id for d in batch[i + 1 :]])
                return True
        await self._flush()
        return len(batch) >= ORDERED_BATCH

    async def _unordered_round(self) -> bool:
        """Fill the free call slots from a claim, then wait while calls run; whether to claim again at once.

        A claim that found fewer deliveries than free slots drained what was due: the next claim waits for the
        doorbell (calls ending meanwhile only get their acknowledgements flushed), so an idle subscription costs
        no claim per call."""
        self._ended.clear()
        free = self.spec.concurrency - len(self._calls)
        claimed = await self.source.claim(free) if free > 0 else []
        for delivery in claimed:
            call = asyncio.get_running_loop().create_task(self._deliver_one(delivery))
            self._calls.add(call)
            call.add_done_callback(self._call_ended)
        drained = len(claimed) < free
        while self._calls:
            woken = await wait_for_any((self._bell, self._ended), POLL)
            self._ended.clear()  # before flushing: a call ending from here on wakes the next wait
            await self._flush()
            if self._stopping or self._bell.is_set() or not woken or not drained:
                return True
        await self._flush()
        return not drained

    def _call_ended(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        self._ended.set()

    async def _deliver_one(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        except Exception:  # failing it failed (the ODB): its lease runs out and it is delivered again
            logger.exception(
                "subscription %s: recording the outcome of delivery %s failed", self.spec.name, delivery.id
            )

    async def _deliver(self, delivery: Delivery) -> bool:
        """Invoke the service with one delivery: queue its acknowledgement on success, else fail it. Whether it
        succeeded."""
        message = delivery.message
        cid = message.cid or new_cid()
        request = Request(message.data, channel=f"pubsub:{self.spec.name}")
        request.pubsub = pubsub_message(delivery, self.source.id_prefix)
        started = time.monotonic()
        try:
            await self.invoker.call(self.service, message.data, request=request, cid=cid)
        except ServiceNotFound:
            error = f"service '{self.service}' is not deployed"
        except SpliceError as exc:
            error = str(exc)
        except Exception as exc:  # Invoker.call raises SpliceError only; anything else is still a failed call
            error = f"{type(exc).__name__}: {exc}"
        else:
            self.delivered += 1
            self._acks.append(delivery.id)
            self._check_lease(delivery, time.monotonic() - started, cid)
            return True
        self.failed += 1
        await self._fail(delivery, error[:MAX_ERROR], cid)
        return False

    def _check_lease(self, delivery: Delivery, took: float, cid: str) -> None:
        """Say so when a call outlasted its lease: another server may have delivered the message again meanwhile."""
        if took > self.spec.lease:
            logger.warning(
                "subscription %s: message %s (cid %s) took %.1f s, longer than the subscription's lease of %s s: "
                "another server may have delivered it again meanwhile; give the subscription a longer lease",
                self.spec.name,
                delivery.message.id,
                cid,
                took,
                self.spec.lease,
                extra={"cid": cid},
            )

    async def _fail(self, delivery: Delivery, error: str, cid: str) -> None:
        spec = self.spec
        attempt = delivery.attempt
        if attempt >= spec.delivery_limit:
            retry_at: int | None = None
            logger.error(
                "subscription %s: message %s (cid %s) is dead-lettered after %s attempts: %s",
                spec.name,
                delivery.message.id,
                cid,
                attempt,
                error,
                extra={"cid": cid},
            )
        else:
            delay = spec.retry_delay(attempt)
            retry_at = now_us() + int(delay * 1e6)
            self._retry_us = retry_at if self._retry_us is None else min(self._retry_us, retry_at)
            logger.warning(
                "subscription %s: message %s (cid %s) attempt %s of %s failed, retried in %s s: %s",
                spec.name,
                delivery.message.id,
                cid,
                attempt,
                spec.delivery_limit,
                delay,
                error,
                extra={"cid": cid},
            )
        await self.source.fail(delivery, error, retry_at)

    async def _flush(self) -> None:
        """Acknowledge the calls that succeeded since the last flush, in one go."""
        if self._acks:
            acks, self._acks = self._acks, []
            done = await self.source.ack(acks)
            if done < len(acks):
                logger.warning(
                    "subscription %s: %s of %s deliveries were acknowledged elsewhere already: their lease ran out "
                    "while this server had them (a call or the store too slow), and another holder delivered them "
                    "again; a longer lease avoids that",
                    self.spec.name,
                    len(acks) - done,
                    len(acks),
                )

    async def _finish(self) -> None:
        """After the loop: let calls under way end, acknowledge what succeeded."""
        if self._calls:
            await asyncio.wait(set(self._calls))
        try:
            await self._flush()
        except Exception:  # those messages are delivered again once their lease runs out
            logger.exception("subscription %s: acknowledging at stop failed", self.spec.name)


__all__ = [
    "ACK_EVERY",
    "GRACE",
    "ORDERED_BATCH",
    "POLL",
    "Bells",
    "Deliverer",
    "Source",
    "StoredDeliveries",
    "now_us",
    "pubsub_message",
    "wait_for_any",
    "wait_for_bell",
]
