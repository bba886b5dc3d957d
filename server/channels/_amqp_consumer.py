"""One AMQP channel's consumer on one server: deliveries in, the service called, acknowledged or retried or
dead-lettered (see ``amqp.py`` for the semantics and why the retries wait in ``<queue>.retry``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..connections.amqp import AmqpConnection, NotConfirmed
from ..core.context import current_cid, new_cid
from ..core.errors import SpliceError
from ..core.service import Request
from ._amqp_messages import (
    ATTEMPT,
    CID,
    Undecodable,
    attempt_of,
    cid_of,
    copied_headers,
    error_text,
    payload_of,
    retry_delay,
    text_headers,
)
from .specs import AmqpChannel

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractMessage, AbstractQueue

    from ..core.invoker import Invoker

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 30.0
"""Seconds to wait for the broker to confirm a retry copy or a dead letter (the original stays unacked till then)."""
HANDBACK_PAUSE = 1.0
"""Seconds before a message whose copy could not be published goes back to the queue (no tight loop)."""


class Consumer:
    """One AMQP channel on this server: its channel on the connection, its queues, the messages under way."""

    def __init__(
        self, spec: AmqpChannel, connection: AmqpConnection, release: Callable[[], None], invoker: Invoker
    ) -> None:
        self.spec = spec
        self.connection = connection
        self._release: Callable[[], None] | None = release
        self._invoker = invoker
        self.dead_letter = spec.dead_letter or f"{spec.queue}.dead"
        self.retry_queue = f"{spec.queue}.retry"
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._setup: asyncio.Task[None] | None = None
        self._under_way: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def consuming(self) -> bool:
        """Whether the broker delivers to this consumer now."""
        return self._tag is not None and not self._closing

    @property
    def under_way(self) -> int:
        """Messages delivered and not settled yet."""
        return len(self._under_way)

    def start(self) -> None:
        self._setup = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Open the channel, declare the queues and consume; on a broker error, try again (1 s, doubling to 60 s)."""
        current_cid.set("-")  # this task outlives the call (a reload) that started it: not that call's cid
        delay = 1.0
        spec = self.spec
        while not self._closing:
            try:
                await self._open()
            except _broker_errors() as exc:
                await self._close_channel()
                logger.error(
                    "AMQP channel %s cannot consume queue %s through connection %s (%s): %s: %s; trying again in %s s",
                    spec.name,
                    spec.queue,
                    spec.connection,
                    self.connection.display,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            else:
                logger.info(
                    "AMQP channel %s consumes queue %s through connection %s (prefetch %s) for service %s",
                    spec.name,
                    spec.queue,
                    spec.connection,
                    spec.prefetch,
                    spec.service,
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _open(self) -> None:
        spec = self.spec
        self._channel = channel = await self.connection.channel(spec.prefetch)
        if spec.declare:
            queue = await channel.declare_queue(spec.queue, durable=True)
        else:
            queue = await channel.get_queue(spec.queue, ensure=True)
        await channel.declare_queue(self.dead_letter, durable=True)
        if spec.retries and spec.backoff:
            await channel.declare_queue(
                self.retry_queue,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": spec.queue},
            )
        self._queue = queue
        self._tag = await queue.consume(self._deliver)

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        """One delivery (aio-pika runs each in a task of its own: up to ``prefetch`` at once)."""
        if self._closing:  # between asking the broker to stop and its answer: hand it back at once
            with contextlib.suppress(*_broker_errors()):
                await message.reject(requeue=True)
            return
        task = asyncio.current_task()
        if task is not None:
            self._under_way.add(task)
        cid = cid_of(message.headers, message.correlation_id) or new_cid()
        token = current_cid.set(cid)
        try:
            await self._settle(message, cid)
        except _broker_errors(NotConfirmed) as exc:
            logger.error(
                "AMQP channel %s: message %s (cid %s) could not be settled (%s: %s); it goes back to queue %s",
                self.spec.name,
                message.message_id,
                cid,
                type(exc).__name__,
                exc,
                self.spec.queue,
            )
            await asyncio.sleep(HANDBACK_PAUSE)
            with contextlib.suppress(*_broker_errors()):  # a closed channel hands it back by itself
                await message.reject(requeue=True)
        finally:
            current_cid.reset(token)
            if task is not None:
                self._under_way.discard(task)

    async def _settle(self, message: AbstractIncomingMessage, cid: str) -> None:
        """Run the service; acknowledge on success, else publish a retry copy or a dead letter first."""
        spec = self.spec
        try:
            payload = payload_of(message.body, message.content_type)
        except Undecodable as exc:
            await self._bury(message, cid, exc, "undecodable", 0)
            await message.ack()
            return
        attempt = attempt_of(message.headers)
        request = Request(payload, channel=spec.name, headers=text_headers(message.headers))
        try:
            await self._invoker.call(spec.service, payload, request=request, cid=cid)
        except Exception as exc:  # a call failing in any way is retried, never left stuck
            code = exc.code if isinstance(exc, SpliceError) else "error"
            if attempt > spec.retries:
                await self._bury(message, cid, exc, code, attempt)
            else:
                delay = retry_delay(spec.backoff, attempt)
                copy = self._copy(message, {CID: cid, ATTEMPT: attempt + 1}, expiration=delay or None)
                await self._publish(copy, self.retry_queue if delay else spec.queue)
                logger.warning(
                    "AMQP channel %s: attempt %s of %s failed (cid %s), retried in %s s: %s",
                    spec.name,
                    attempt,
                    spec.retries + 1,
                    cid,
                    delay,
                    exc,
                )
        await message.ack()

    async def _bury(self, message: AbstractIncomingMessage, cid: str, exc: Exception, code: str, tries: int) -> None:
        """Publish ``message`` to the dead-letter queue with why; a replay from there starts at attempt 1."""
        spec = self.spec
        why = {
            "x-splice-error": error_text(exc),
            "x-splice-error-code": code,
            "x-splice-service": spec.service,
            "x-splice-channel": spec.name,
            "x-splice-queue": spec.queue,
            CID: cid,
            "x-splice-attempts": tries,
        }
        await self._publish(self._copy(message, why, drop=(ATTEMPT,)), self.dead_letter)
        logger.error(
            "AMQP channel %s: message %s (cid %s) goes to dead-letter queue %s after %s attempts: %s",
            spec.name,
            message.message_id,
            cid,
            self.dead_letter,
            tries,
            exc,
        )

    @staticmethod
    def _copy(
        message: AbstractIncomingMessage,
        extra: Mapping[str, Any],
        expiration: float | None = None,
        drop: tuple[str, ...] = (),
    ) -> AbstractMessage:
        """A persistent copy of ``message`` with ``extra`` headers (not its user id: the broker checks that)."""
        import aio_pika

        return aio_pika.Message(
            message.body,
            headers=copied_headers(message.headers, extra, drop),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=message.priority,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            expiration=expiration,
            message_id=message.message_id,
            timestamp=message.timestamp,
            type=message.type,
            app_id=message.app_id,
        )

    async def _publish(self, message: AbstractMessage, queue: str) -> None:
        """Send ``message`` to ``queue`` and wait for the broker's confirm (``NotConfirmed`` if it did not take it)."""
        from pamqp.commands import Basic

        if self._channel is None:
            raise NotConfirmed(f"AMQP channel '{self.spec.name}' has no open channel to publish to {queue!r}")
        exchange = self._channel.default_exchange
        result = await exchange.publish(message, queue, mandatory=True, timeout=PUBLISH_TIMEOUT)
        if not isinstance(result, Basic.Ack):
            raise NotConfirmed(f"the broker did not take the message for queue {queue!r} (does it exist?)")

    async def stop(self, grace: float) -> None:
        """No new deliveries; wait up to ``grace`` s for those under way; close the channel (the broker then
        delivers again whatever was not acknowledged); release the connection."""
        self._closing = True
        if self._setup is not None and not self._setup.done():
            self._setup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._setup
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(*_broker_errors()):
                await self._queue.cancel(self._tag, timeout=5)
        if self._under_way:
            _, late = await asyncio.wait(set(self._under_way), timeout=grace)
            if late:
                logger.warning(
                    "AMQP channel %s: %s messages still under way after %s s are left unacknowledged;"
                    " the broker delivers them again",
                    self.spec.name,
                    len(late),
                    grace,
                )
        await self._close_channel()
        self._tag = None
        if self._release is not None:
            release, self._release = self._release, None
            release()
        logger.info("AMQP channel %s stopped consuming queue %s", self.spec.name, self.spec.queue)

    async def _close_channel(self) -> None:
        channel, self._channel, self._queue, self._tag = self._channel, None, None, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*_broker_errors()):
                await channel.close()


def _broker_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What talking to the broker raises: aio-pika's errors, a lost connection, a timeout, and the bare
    ``RuntimeError`` aio-pika raises for a closed channel (imported when first needed: aio-pika takes ~100 ms)."""
    import aio_pika.exceptions

    return (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError, *more)


__all__ = ["Consumer"]
