"""AMQP channels: each message of a RabbitMQ queue invokes a service, on every server at once.

Every server consumes every AMQP channel's queue (competing consumers, active-active): the broker spreads the
messages, ``prefetch`` bounds how many a server holds unacknowledged, and a server that dies (even ``kill -9``)
hands its unacknowledged messages back to the broker, which gives them to the others. There is no failover step.

A message is acknowledged only after its service succeeded: delivery is at-least-once. A failed message is
retried ``retries`` times, then sent to the dead-letter queue with headers saying why (``x-splice-error``...).
The wait between attempts uses RabbitMQ's delayed-retry pattern: the failed message's copy, with
``x-splice-attempt`` counted up, goes to ``<queue>.retry`` with a per-message TTL of the backoff; nothing
consumes that queue, and it dead-letters expired messages back into ``<queue>``. So a wait holds no delivery,
no prefetch slot and no task, and survives the server that started it (the copy is in the broker). Sleeping and
then republishing would hold the delivery for the whole backoff: a few failing messages would fill the prefetch
window and stall the queue on that server. (RabbitMQ expires messages only at the head of a queue, so a retry
may wait longer than its backoff behind a longer one, never shorter.) Every copy is confirmed by the broker
before the original is acknowledged: a crash in between delivers the message twice, never zero times.

Channels are reconciled after every configuration reload: one created, changed or deleted, or whose outgoing
connection changed, starts, restarts or stops its consumer here. ``stop`` cancels the consumers first, lets the
messages under way finish (for ``grace`` seconds), then closes the channels: what did not finish is left
unacknowledged, and the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from ..connections import ConnectionUnusable
from ..connections.amqp import AmqpConnection
from ..core.outgoing import UnknownConnection
from ._amqp_consumer import Consumer
from .specs import AmqpChannel, ChannelOfAnyKind

if TYPE_CHECKING:
    from ..connections import Connections
    from ..core.invoker import Invoker

logger = logging.getLogger(__name__)


class LiveChannels(Protocol):
    """What AMQP channels need of the server's live configuration (``runtime.LiveConfig``)."""

    connections: Connections
    listeners: list[Callable[[], Awaitable[None]]]

    def of(self, kind: str) -> list[ChannelOfAnyKind]: ...


class AmqpChannels:
    """This server's AMQP channels: one consumer per ``kind = "amqp"`` channel, kept in step with the config.

    Made by the composition root, which puts it in ``runtime.background``; it registers ``reconcile`` on
    ``live.listeners`` itself. Nothing consumes before ``start``.
    """

    def __init__(self, live: LiveChannels, invoker: Invoker, grace: float = 10.0) -> None:
        self._live = live
        self._invoker = invoker
        self.grace = grace
        """Seconds ``stop`` waits for the messages under way before handing the rest back to the broker."""
        self._consumers: dict[str, Consumer] = {}
        self._problems: dict[str, str] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._started = False
        live.listeners.append(self.reconcile)

    @property
    def consuming(self) -> list[str]:
        """The channels whose consumer receives messages now."""
        return sorted(name for name, consumer in self._consumers.items() if consumer.consuming)

    def consumer(self, name: str) -> Consumer | None:
        """Channel ``name``'s consumer on this server, if it has one."""
        return self._consumers.get(name)

    async def start(self) -> None:
        self._started = True
        await self.reconcile()

    async def reconcile(self) -> None:
        """Make the consumers what the channels and connections now define (after each configuration reload).

        Nothing here awaits (consumers connect in tasks of their own), so two reloads never interleave."""
        if not self._started:
            return
        wanted = {spec.name: spec for spec in self._live.of("amqp") if isinstance(spec, AmqpChannel)}
        for name in set(self._consumers) - set(wanted):
            logger.info("AMQP channel %s was deleted: its consumer stops", name)
            self._retire(self._consumers.pop(name))
        for name in set(self._problems) - set(wanted):
            del self._problems[name]
        for spec in wanted.values():
            self._reconcile_one(spec)

    def _reconcile_one(self, spec: AmqpChannel) -> None:
        current = self._consumers.get(spec.name)
        try:
            connection, release = self._live.connections.hold("amqp", spec.connection)
            if not isinstance(connection, AmqpConnection):
                release()
                raise ConnectionUnusable(f"outgoing connection '{spec.connection}' is not an AMQP connection")
        except (UnknownConnection, ConnectionUnusable) as exc:
            if current is not None:
                self._retire(self._consumers.pop(spec.name))
            self._report(spec, f"AMQP channel '{spec.name}' cannot consume: {exc}; tried again at the next reload")
            return
        self._problems.pop(spec.name, None)
        if current is not None and current.spec == spec and current.connection is connection:
            release()  # the consumer holds that connection already
            return
        if current is not None:
            logger.info(
                "AMQP channel %s or its connection %s changed: its consumer restarts", spec.name, spec.connection
            )
            self._retire(current)
        consumer = Consumer(spec, connection, release, self._invoker)
        self._consumers[spec.name] = consumer
        consumer.start()

    def _report(self, spec: AmqpChannel, problem: str) -> None:
        if self._problems.get(spec.name) != problem:  # once per problem, not at every reload
            logger.error("%s", problem)
        self._problems[spec.name] = problem

    def _retire(self, consumer: Consumer) -> None:
        task = asyncio.get_running_loop().create_task(consumer.stop(self.grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        """Cancel every consumer, let the messages under way finish (``grace``), close the channels."""
        self._started = False
        consumers, self._consumers = list(self._consumers.values()), {}
        await asyncio.gather(*(consumer.stop(self.grace) for consumer in consumers), *set(self._retiring))


__all__ = ["AmqpChannels", "Consumer", "LiveChannels"]
