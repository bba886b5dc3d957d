"""The worker pool's accounting: threads taken, the queue, abandoned calls counted busy until their code returns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from splice.server.core.errors import Overloaded
from splice.server.core.workers import WorkerPool


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not true in time"
        await asyncio.sleep(0.01)


async def test_beyond_threads_and_queue_a_call_is_refused_and_a_freed_thread_goes_to_the_queue() -> None:
    pool = WorkerPool(threads=1, queue=1)
    gate = threading.Event()
    first = asyncio.create_task(pool.run(gate.wait, "s", "c1"))
    await until(lambda: pool.in_threads() != [])
    second = asyncio.create_task(pool.run(lambda: "second", "s", "c2"))
    await until(lambda: pool.queued == 1)
    assert pool.saturated()
    with pytest.raises(Overloaded) as refused:
        await pool.run(lambda: None, "s", "c3")
    assert refused.value.threads == {"busy": 1, "size": 1, "queued": 1, "queue": 1}
    gate.set()
    assert await first is True
    assert await second == "second"
    assert pool.stats() == {"busy": 0, "size": 1, "queued": 0, "queue": 1, "abandoned": 0}


async def test_an_abandoned_call_holds_its_thread_until_its_code_returns() -> None:
    pool = WorkerPool(threads=1, queue=1)
    gate = threading.Event()
    stuck = asyncio.create_task(pool.run(gate.wait, "stuck", "c1"))
    await until(lambda: pool.in_threads() != [])
    stuck.cancel()  # its caller's timeout
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert pool.stats()["busy"] == 1
    assert pool.stats()["abandoned"] == 1
    assert pool.saturated()  # every thread held by a call nobody waits for
    queued = asyncio.create_task(pool.run(lambda: "ran", "next", "c2"))
    await until(lambda: pool.queued == 1)
    gate.set()
    assert await queued == "ran"
    await until(lambda: pool.busy == 0)


async def test_a_queued_call_that_gives_up_leaves_no_thread_taken() -> None:
    pool = WorkerPool(threads=1, queue=2)
    gate = threading.Event()
    first = asyncio.create_task(pool.run(gate.wait, "s", "c1"))
    await until(lambda: pool.in_threads() != [])
    waiting = asyncio.create_task(pool.run(lambda: "never", "s", "c2"))
    await until(lambda: pool.queued == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.queued == 0
    gate.set()
    await first
    assert pool.busy == 0
    assert await pool.run(lambda: "again", "s", "c3") == "again"
