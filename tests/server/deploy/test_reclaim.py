"""When the reclaimer collects: once after a burst of deployments, not inside it (a full collection pauses the
server's loop for tens of milliseconds, in the middle of the next deployment's work)."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

from splice.server.deploy.reclaim import Reclaimer


async def _burst(reclaimer: Reclaimer, seconds: float, every: float = 0.05) -> bool:
    """Retire a module every ``every`` seconds for ``seconds``; whether a collection ran meanwhile."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        reclaimer.retire({"old": ModuleType("old")})
        await asyncio.sleep(every)
    return reclaimer.last is not None


async def _collected(reclaimer: Reclaimer, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while reclaimer.last is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return reclaimer.last is not None


async def test_a_burst_of_deployments_is_collected_once_after_it() -> None:
    reclaimer = Reclaimer(delays=(0.5, 2.0), max_wait=30.0)
    try:
        assert not await _burst(reclaimer, 1.5), "collected while deployments were still coming"
        assert await _collected(reclaimer)
        assert reclaimer.pending == []
    finally:
        reclaimer.close()


async def test_a_long_stream_of_deployments_is_still_collected_within_max_wait() -> None:
    reclaimer = Reclaimer(delays=(0.5, 2.0), max_wait=0.8)
    try:
        assert await _burst(reclaimer, 3.0), "no collection during a stream longer than max_wait"
    finally:
        reclaimer.close()
