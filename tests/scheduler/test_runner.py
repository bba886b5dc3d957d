"""The scheduler's loop when the ODB is away: it stands by, stops cleanly, and takes over once the ODB is back.

A real scheduler (``Scheduler.run``) against real databases that cannot be reached: closed ports for PostgreSQL
and MariaDB, a SQLite file whose directory is gone. Each driver fails its own way (asyncpg with a bare
``OSError``, the others with SQLAlchemy's errors), and none of them may stop the loop."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from splice.scheduler import Scheduler
from splice.server.config import SchedulerSettings
from splice.server.odb import OdbRepository, connect, migrate

SETTINGS = SchedulerSettings(names=("scheduler1",), poll_interval=0.05, lease_ttl=0.3)
UNREACHABLE = {
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:1/test",
    "mariadb": "mysql+aiomysql://root@127.0.0.1:1/test",
    "sqlite": "sqlite+aiosqlite:///{tmp}/gone/odb.db",
}


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def settle(odb: OdbRepository) -> None:
    """Dispose of the ODB and let aiosqlite's worker threads finish what they were given while this test's loop
    still runs: one that finishes after the loop closed raises in its thread ("Event loop is closed"), which
    pytest then pins on whichever test runs at that moment (seen once under load)."""
    await odb.engine.dispose()
    gc.collect()  # an unclosed aiosqlite connection stops its thread when collected
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(
        "_connection_worker_thread" in t.name for t in threading.enumerate() if t.is_alive()
    ):
        await asyncio.sleep(0.02)


async def cluster_in(path: Path) -> OdbRepository:
    """A migrated SQLite ODB at ``path`` with the test's cluster in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repository = OdbRepository(connect(f"sqlite+aiosqlite:///{path}"), "runner-test")
    await migrate(repository.engine)
    await repository.ensure_cluster()
    return repository


@pytest.mark.parametrize("backend", sorted(UNREACHABLE))
async def test_a_scheduler_whose_odb_is_away_stands_by_and_stops_cleanly(backend: str, tmp_path: Path) -> None:
    odb = await cluster_in(tmp_path / "odb" / "odb.db")
    await odb.engine.dispose()
    odb.engine = connect(UNREACHABLE[backend].format(tmp=tmp_path))  # the database went away after start up
    scheduler = Scheduler("scheduler1", odb, SETTINGS)
    states: list[str] = []
    scheduler.on_state = states.append
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    try:
        await eventually(lambda: bool(states) or running.done())  # said once its first try for the lease is over
        assert not running.done(), running.result()
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await settle(odb)
    assert (states, scheduler.active) == (["standby"], False)


async def test_a_scheduler_takes_over_once_the_odb_is_back(tmp_path: Path) -> None:
    odb = await cluster_in(tmp_path / "odb" / "odb.db")
    await odb.engine.dispose()
    (tmp_path / "odb").rename(tmp_path / "away")  # the database's volume is gone for a while
    scheduler = Scheduler("scheduler1", odb, SETTINGS)
    states: list[str] = []
    scheduler.on_state = states.append
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    try:
        await eventually(lambda: bool(states) or running.done())
        assert states == ["standby"]
        (tmp_path / "away").rename(tmp_path / "odb")
        await eventually(lambda: scheduler.active or running.done())
        assert states == ["standby", "active"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    try:
        assert states == ["standby", "active", "standby"]
        assert await odb.leases("scheduler") == {}  # given back on the way out
    finally:
        await settle(odb)
