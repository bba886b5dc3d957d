"""The bounded pool of worker threads that runs plain ``def`` services, with a bounded queue in front of it.

``threads`` calls run at once; up to ``queue`` more wait for a thread; a call beyond that is refused at once with
``Overloaded``. A thread cannot be killed: a call whose caller gave up (its timeout) is *abandoned*: its thread runs
on, still counted busy, until the user's code returns; its result is then dropped and logged with the call's cid.
So a server whose threads are all held by stuck calls says so (``saturated``) instead of queueing calls that can
never run. No web framework here: the HTTP edge turns ``Overloaded`` into 503 and ``stats()`` into health answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from .errors import Overloaded

logger = logging.getLogger(__name__)
T = TypeVar("T")

_PENDING, _RUNNING, _DROPPED = "pending", "running", "dropped"


@dataclass(eq=False)
class Running:
    """One call holding a worker thread."""

    service: str
    cid: str
    started: float = field(default_factory=time.monotonic)
    abandoned: bool = False
    """Its caller was answered already (timeout, cancelled): its result will be dropped."""
    state: str = _PENDING
    finished: bool = False
    """Set by its thread when the user's code returned (before the event loop hears of it)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> str:
        return f"{self.service} (cid {self.cid}, running {time.monotonic() - self.started:.1f} s)"


class WorkerPool:
    """``threads`` worker threads and at most ``queue`` calls waiting for one (both at least 1 and 0)."""

    def __init__(self, threads: int = 40, queue: int = 100) -> None:
        self.size = max(1, threads)
        self.queue = max(0, queue)
        self.running: set[Running] = set()
        """Every call holding a thread now, abandoned ones included (read on the event loop)."""
        self._taken = 0
        """Threads taken: ``running`` plus those handed to a queued call that has not started yet."""
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def busy(self) -> int:
        return self._taken

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def abandoned(self) -> int:
        return sum(1 for call in self.running if call.abandoned)

    def saturated(self) -> bool:
        """No plain ``def`` call can start soon: every thread is busy and the queue is full, or every thread is held
        by a call whose caller already gave up (stuck code: queued calls would only time out)."""
        if self.busy < self.size:
            return False
        return self.queued >= self.queue or self.abandoned >= self.size

    def in_threads(self) -> list[Running]:
        """The calls whose user code still runs in a worker thread, oldest first; safe from any thread."""
        for _ in range(3):
            try:
                calls = list(self.running)
            except RuntimeError:  # the set changed while read from another thread
                continue
            return sorted((call for call in calls if call.state == _RUNNING and not call.finished), key=_started)
        return []

    def stats(self) -> dict[str, int]:
        return {
            "busy": self.busy,
            "size": self.size,
            "queued": self.queued,
            "queue": self.queue,
            "abandoned": self.abandoned,
        }

    async def run(self, func: Callable[[], T], service: str, cid: str) -> T:
        """Run ``func`` in a worker thread once one is free; ``Overloaded`` at once when none is and the queue is full.

        Cancelling the caller (its timeout) abandons the call: the thread stays busy until ``func`` returns."""
        await self._take_thread(service)
        call = Running(service, cid)
        self.running.add(call)
        loop = asyncio.get_running_loop()

        def in_thread() -> T:
            with call.lock:
                if call.state == _DROPPED:  # abandoned before it started: never run it
                    raise asyncio.CancelledError
                call.state = _RUNNING
            try:
                return func()
            finally:
                call.finished = True
                _call_soon(loop, self._ended, call)

        try:
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self.size)
            return await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True, limiter=self._limiter)
        except asyncio.CancelledError:
            with call.lock:
                if call.state == _PENDING:  # never started, and now never will: the thread is free at once
                    call.state = _DROPPED
                    self._release(call)
                elif call.state == _RUNNING and not call.abandoned and call in self.running:
                    call.abandoned = True
            raise

    async def _take_thread(self, service: str) -> None:
        if self._taken < self.size and not self._waiting:
            self._taken += 1
            return
        if len(self._waiting) >= self.queue:
            raise Overloaded(service, self.busy, self.size, self.queued, self.queue)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # _release hands its thread over by resolving this future
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._taken -= 1  # given a thread just as it gave up: pass it on
                self._hand_over()
            else:
                self._waiting.remove(waiter)
            raise

    def _ended(self, call: Running) -> None:
        if call.abandoned:
            logger.warning(
                "service %s (cid %s) returned after %.1f s, after its caller had been answered: its result is "
                "dropped and its worker thread is free again",
                call.service,
                call.cid,
                time.monotonic() - call.started,
                extra={"cid": call.cid},
            )
        self._release(call)

    def _release(self, call: Running) -> None:
        if call in self.running:
            self.running.discard(call)
            self._taken -= 1
            self._hand_over()

    def _hand_over(self) -> None:
        while self._waiting and self._taken < self.size:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._taken += 1
                waiter.set_result(None)


def _started(call: Running) -> float:
    return call.started


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[Running], None], call: Running) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone, nobody counts threads now
        loop.call_soon_threadsafe(callback, call)


__all__ = ["Running", "WorkerPool"]
