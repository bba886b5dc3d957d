"""Cluster events: which events a server takes and when it knows it may have missed some (``EventTracker``, pure),
then real servers (runtimes served by Hypercorn in this process) sending each other events over HTTP and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from splice.server.cluster.events import PATIENCE, EventTracker

# -- the tracker, pure ----------------------------------------------------------------------------

Step = tuple[str, str, int] | tuple[str, str, int, bool]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("a", "b1", 1), ("a", "b1", 2), ("a", "b1", 3)], [(True, False)] * 3),
        ([("a", "b1", 1), ("a", "b1", 3)], [(True, False), (True, True)]),
        ([("a", "b1", 1), ("a", "b1", 2), ("a", "b1", 2), ("a", "b1", 1)], [(True, False)] * 2 + [(False, False)] * 2),
        ([("a", "b1", 5)], [(True, True)]),
        ([("a", "b1", 1), ("a", "b2", 1)], [(True, False), (True, True)]),
        ([("a", "b1", 1), ("a", "b1", 2, True), ("a", "b2", 1)], [(True, False)] * 3),
        ([("a", "b1", 1, True), ("a", "b2", 4)], [(True, False), (True, True)]),
        ([("a", "b1", 1), ("b", "c1", 1), ("a", "b1", 2), ("b", "c1", 3)], [(True, False)] * 3 + [(True, True)]),
    ],
    ids=[
        "in-order",
        "a-gap",
        "repeats-and-stragglers-are-not-applied",
        "first-event-is-not-the-first",
        "restart-without-goodbye",
        "restart-after-goodbye",
        "new-boot-not-from-its-start",
        "senders-are-tracked-apart",
    ],
)
def test_which_events_are_taken_and_which_show_a_loss(steps: list[Step], expected: list[tuple[bool, bool]]) -> None:
    tracker = EventTracker()
    got = []
    for origin, boot, n, *bye in steps:
        take, missed = tracker.accept(origin, boot, n, bye=bool(bye and bye[0]))
        got.append((take, missed is not None))
    assert got == expected


def test_a_first_event_right_after_the_count_published_at_start_misses_nothing() -> None:
    tracker = EventTracker()
    tracker.baseline([{"name": "a", "events_boot": "b1", "events_sent": 40}])
    assert tracker.accept("a", "b1", 41) == (True, None)
    other = EventTracker()
    other.baseline([{"name": "a", "events_boot": "b1", "events_sent": 40}])
    take, missed = other.accept("a", "b1", 43)
    assert take
    assert missed is not None
    assert "43, not 41" in missed


def row(name: str, boot: str, sent: int) -> dict[str, Any]:
    return {"name": name, "events_boot": boot, "events_sent": sent}


def test_a_published_count_ahead_for_more_than_patience_heartbeats_and_seconds_is_a_loss() -> None:
    tracker = EventTracker(patience=3.0)
    tracker.accept("a", "b1", 1)
    for beat in range(PATIENCE + 1):
        assert tracker.beat([row("a", "b1", 3)], now=beat * 0.2) is None  # maybe in flight
    assert tracker.beat([row("a", "b1", 3)], now=2.9) is None  # enough heartbeats, not yet enough time
    reason = tracker.beat([row("a", "b1", 3)], now=3.1)
    assert reason is not None
    assert "sent 3 events, 1 arrived" in reason
    assert tracker.beat([row("a", "b1", 3)], now=10) is None  # dealt with once
    assert tracker.accept("a", "b1", 2) == (False, None)  # a straggler from before is not applied
    assert tracker.accept("a", "b1", 4) == (True, None)


def test_events_that_arrive_in_time_are_no_loss() -> None:
    tracker = EventTracker()
    tracker.accept("a", "b1", 1)
    assert tracker.beat([row("a", "b1", 3)]) is None
    tracker.accept("a", "b1", 2)
    tracker.accept("a", "b1", 3)
    for beat in range(PATIENCE + 2):
        assert tracker.beat([row("a", "b1", 3)], now=beat * 5.0) is None


def test_a_count_that_keeps_moving_while_events_arrive_is_no_loss() -> None:
    tracker = EventTracker()
    n = 0
    for beat in range(10):
        assert tracker.beat([row("a", "b1", n + 5)], now=beat * 5.0) is None, beat
        for _ in range(5 + beat):  # the sender is ahead at every beat, but what it had published has come
            n += 1
            tracker.accept("a", "b1", n)


def test_a_sender_gone_without_goodbye_is_a_loss_once() -> None:
    tracker = EventTracker()
    tracker.accept("a", "b1", 1)
    assert tracker.beat([row("a", "b1", 1)]) is None
    reason = tracker.beat([])
    assert reason is not None
    assert "a stopped without saying goodbye" in reason
    assert tracker.beat([]) is None
    assert tracker.accept("a", "b2", 1) == (True, None)  # its new start misses nothing more


def test_a_sender_killed_and_started_again_before_it_was_seen_gone_is_a_loss_once() -> None:
    tracker = EventTracker()
    tracker.accept("a", "b1", 1)
    assert tracker.beat([row("a", "b1", 1)]) is None
    reason = tracker.beat([row("a", "b2", 0)])  # its new process's first heartbeat
    assert reason is not None
    assert "a started again without saying goodbye" in reason
    assert tracker.beat([row("a", "b2", 0)]) is None
    assert tracker.accept("a", "b2", 1) == (True, None)


def test_a_sender_that_said_goodbye_may_start_again() -> None:
    tracker = EventTracker()
    tracker.accept("a", "b1", 1)
    tracker.accept("a", "b1", 2, bye=True)
    assert tracker.beat([row("a", "b2", 0)]) is None
    assert tracker.accept("a", "b2", 1) == (True, None)


def test_forgive_after_a_drop() -> None:
    tracker = EventTracker()
    tracker.accept("a", "b1", 1)
    tracker.beat([row("a", "b1", 5)])
    tracker.forgive()
    assert tracker.accept("a", "b1", 3) == (False, None)
    assert tracker.accept("a", "b1", 6) == (True, None)


# -- real servers -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def servers(
    directory: Path, count: int, redis: str | None = None, serve_only: set[str] | None = None
) -> AsyncIterator[list[Any]]:
    """``count`` servers of a new cluster, each a runtime served by Hypercorn on this event loop (those in
    ``serve_only``, if given: the others run, heartbeat and send, but nobody can reach them over HTTP)."""
    from splice.server.bootstrap import build_runtime, serve
    from splice.server.cli.cluster import quickstart_create
    from splice.server.config import load_settings
    from tests.conftest import free_ports

    port = free_ports(count + 1)
    await asyncio.to_thread(quickstart_create, directory, port, None, None, count, redis, False)
    config = directory / "cluster.toml"
    config.write_text(config.read_text().replace("[cluster]\n", "[cluster]\nsync_interval = 0.2\n", 1))
    settings = load_settings(directory)
    runtimes, tasks = [], []
    try:
        for n in range(1, count + 1):
            name = f"server{n}"
            runtime = await build_runtime(settings, name, asyncio.Event())
            runtimes.append(runtime)
            if serve_only is None or name in serve_only:
                tasks.append(asyncio.create_task(serve(runtime, runtime.shutdown)))
        async with httpx.AsyncClient() as client:
            for runtime in runtimes:
                if serve_only is None or runtime.server.name in serve_only:
                    await until(lambda r=runtime: _answers(client, r.server.url))
        await until(lambda: _all_see_each_other(runtimes, count))
        yield runtimes
    finally:
        for runtime in runtimes:
            runtime.shutdown.set()
        if tasks:
            await asyncio.wait(tasks, timeout=20)
        for runtime in runtimes:
            if serve_only is not None and runtime.server.name not in serve_only:
                await runtime.close()


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/splice/ping", timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


async def _all_see_each_other(runtimes: list[Any], count: int) -> bool:
    return all(len(r.cluster._peers) == count - 1 for r in runtimes)


async def until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    """Poll ``check`` (sync or async) until it gives something true."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.02)


def recorder(runtime: Any, kind: str = "test") -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []

    async def handle(data: Any, origin: str) -> None:
        got.append((origin, data))

    runtime.cluster.on_event(kind, handle)
    return got


def missed_counter(runtime: Any) -> list[float]:
    times: list[float] = []

    async def handle() -> None:
        times.append(time.monotonic())

    runtime.cluster.on_missed_events(handle)
    return times


@pytest.fixture(params=["http", "redis"])
def bus(request: pytest.FixtureRequest) -> str | None:
    """The bus of the cluster: HTTP between servers, or a redis-server of the test's own."""
    if request.param == "http":
        return None
    return str(request.getfixturevalue("redis_server").url)


async def test_events_reach_every_other_server_in_order(tmp_path: Path, bus: str | None) -> None:
    async with servers(tmp_path / "c", 3, redis=bus) as (one, two, three):
        seen = {r.server.name: recorder(r) for r in (one, two, three)}
        missed = [missed_counter(r) for r in (two, three)]
        for i in range(500):
            one.cluster.send_event("test", {"i": i})
        two.cluster.send_event("test", {"from": "two"})
        await until(lambda: len(seen["server2"]) == 500 and len(seen["server3"]) == 501)
        for name in ("server2", "server3"):
            from_one = [data["i"] for origin, data in seen[name] if origin == "server1"]
            assert from_one == list(range(500))
        assert seen["server1"] == [("server2", {"from": "two"})]
        assert ("server2", {"from": "two"}) in seen["server3"]
        assert missed == [[], []]
        assert one.cluster.event_stats()["lost"] == 0


async def test_events_from_a_worker_thread(tmp_path: Path) -> None:
    async with servers(tmp_path / "c", 2) as (one, two):
        seen = recorder(two)
        await asyncio.to_thread(lambda: [one.cluster.send_event("test", {"i": i}) for i in range(50)])
        await until(lambda: len(seen) == 50)
        assert [data["i"] for _, data in seen] == list(range(50))


async def test_a_server_that_events_cannot_reach_finds_out_at_its_heartbeat(tmp_path: Path) -> None:
    """server2 runs and heartbeats, but its HTTP port answers nobody: what server1 sends it is lost, and the
    counts in the ODB tell server2 so; a value in its memory cache is dropped."""
    async with servers(tmp_path / "c", 2, serve_only={"server1"}) as (one, two):
        missed = missed_counter(two)
        two.caches["default"].set("k", "stale?")
        one.cluster.send_event("test", {"i": 1})
        await until(lambda: missed)
        assert two.caches["default"].get("k") is None
        assert one.cluster.event_stats()["lost"] >= 1


async def test_a_gap_in_what_arrives_drops_the_memory_caches(tmp_path: Path) -> None:
    async with servers(tmp_path / "c", 2) as (one, two):
        seen = recorder(two)
        one.cluster.send_event("test", {"i": 1})
        await until(lambda: seen)
        two.caches["default"].set("k", 1)
        boot = one.cluster.boot
        n = one.cluster.events_sent
        event = {"kind": "event", "event": "test", "data": {"i": 3}, "origin": "server1", "boot": boot, "n": n + 2}
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {one.repository.internal_token}"}) as client:
            answer = await client.post(f"{two.server.url}/splice/admin/cluster/events", json={"events": [event]})
        assert answer.json() == {"applied": 1}
        assert two.cluster.events_missed == 1
        assert two.caches["default"].get("k") is None
        assert seen[-1] == ("server1", {"i": 3})


async def test_a_clean_restart_is_no_loss_for_the_others(tmp_path: Path) -> None:
    from splice.server.bootstrap import build_runtime, serve
    from splice.server.config import load_settings

    async with servers(tmp_path / "c", 2) as (one, two):
        seen = recorder(one)
        missed = missed_counter(one)
        two.cluster.send_event("test", {"boot": 1})
        await until(lambda: seen)
        two.shutdown.set()
        await until(lambda: two.cluster._task is not None and two.cluster._task.done())
        again = await build_runtime(load_settings(tmp_path / "c"), "server2", asyncio.Event())
        task = asyncio.create_task(serve(again, again.shutdown))
        try:
            await until(lambda: len(again.cluster._peers) == 1)
            again.cluster.send_event("test", {"boot": 2})
            await until(lambda: len(seen) == 2)
            assert missed == []
        finally:
            again.shutdown.set()
            await asyncio.wait([task], timeout=20)


async def test_redis_coming_back_drops_the_memory_caches(tmp_path: Path, redis_server: Any) -> None:
    async with servers(tmp_path / "c", 2, redis=redis_server.url) as (one, two):
        missed = missed_counter(two)
        two.caches["default"].set("k", 1)
        redis_server(False)
        await until(lambda: not two.cluster.bus.connected)
        redis_server(True)
        await until(lambda: missed, seconds=30)
        assert two.caches["default"].get("k") is None
        seen = recorder(two)
        one.cluster.send_event("test", {"after": True})
        await until(lambda: seen)


async def test_an_admin_change_of_a_cache_answers_once_every_server_has_it(tmp_path: Path) -> None:
    """The dashboard (through a load balancer) lists a cache's keys right after it changed them, from whichever
    server answers: the change's answer must come once the other servers have it."""
    async with servers(tmp_path / "c", 2) as (one, two):
        headers = {"Authorization": f"Bearer {(tmp_path / 'c' / 'admin-token').read_text().strip()}"}
        async with httpx.AsyncClient(base_url=one.server.url, headers=headers) as admin:
            for n in range(20):
                key = f"k{n}"
                answer = await admin.put(f"/splice/admin/caches/default/entries/{key}", json={"value": n})
                assert answer.status_code == 200, answer.text
                assert two.caches["default"].get(key) == n  # at once: no waiting after the answer
                answer = await admin.delete(f"/splice/admin/caches/default/entries/{key}")
                assert answer.json()["existed"] is True
                assert two.caches["default"].get(key) is None
            await admin.put("/splice/admin/caches/default/entries/last", json={"value": 1})
            assert (await admin.post("/splice/admin/caches/default/clear")).status_code == 200
            assert two.caches["default"].get("last") is None
