"""The composition root: wires the ODB, the store, the deployment engine and the HTTP edge, then serves.

Nothing else in Splice opens connections or starts processes on its own; this module does it once,
at start, for one server of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import anyio.to_thread

from . import loop as event_loop
from .cache.caches import ServerCaches
from .channels.amqp import AmqpChannels
from .cluster.bus import Bus, HttpBus, RedisBus
from .cluster.credentials import internal_token
from .cluster.member import ClusterMember
from .config import Settings, load_settings
from .connections import ClusterKey, Connections
from .core.errors import ConfigError
from .core.invoker import Invoker
from .core.metrics import Metrics
from .core.store import ServiceStore
from .core.workers import WorkerPool
from .debug import Debugger
from .deploy import DeploymentEngine, DeploymentPath
from .deploy.isolate import Isolation
from .deploy.loader import drop_working_directory_from_path
from .jobs.manager import Jobs
from .logs import access_logger, configure_server_logging
from .pubsub.broker import Broker
from .runtime import LiveConfig, Runtime

logger = logging.getLogger(__name__)
GRACE = 5.0
"""Seconds a stopping server waits for the calls under way (HTTP requests, then background calls) to end."""
HARD_STOP = GRACE + 7.0
"""Seconds after SIGTERM when a server that has still not ended exits anyway (``splice stop`` kills at 15 s)."""


async def build_runtime(settings: Settings, server_name: str, shutdown: asyncio.Event | None = None) -> Runtime:
    """Open the ODB, load every deployed module and the channels; the server is ready to answer after this."""
    from .channels.files import FileChannels
    from .http.websocket import WebSocketPart
    from .odb import OdbRepository, connect
    from .odb.engine import require_head
    from .odb.jobs import JobRepository

    server = settings.server(server_name)
    engine = connect(settings.odb_url)
    try:
        await require_head(engine, settings.odb_url, settings.directory)
    except ConfigError:
        await engine.dispose()
        raise
    repository = OdbRepository(engine, settings.cluster_name)
    await repository.ensure_cluster(internal_token(settings))
    store = ServiceStore()
    deployment = DeploymentEngine(store, repository, settings.deployed_dir(server.name), Isolation(), settings)
    calls = settings.calls
    invoker = Invoker(store, server.name, Metrics(), timeout=calls.timeout, pool=WorkerPool(calls.threads, calls.queue))
    jobs = invoker.jobs = Jobs(JobRepository(repository))
    ide_root = settings.deployed_dir(settings.servers[0].name)
    debugger = Debugger(settings.debug, server, settings.deployed_dir(server.name), ide_root=ide_root)
    if settings.debug.enabled:
        await anyio.to_thread.run_sync(debugger.enable)
    loaded = await deployment.load_all()
    connections = Connections(server.name, cluster_key(settings))
    invoker.connections = connections
    live = LiveConfig(repository, connections)
    await live.reload()
    await repository.register_server(server.name, server.url, os.getpid(), deployment.applied)
    http = HttpBus(server.name, repository.internal_token)
    bus: Bus = RedisBus(settings.redis_url, settings.cluster_name, server.name, http) if settings.redis_url else http
    cluster = ClusterMember(settings, server, repository, deployment, bus, live.reload)
    path = DeploymentPath(deployment, cluster, repository)
    parts = (settings, server, repository, store, invoker, deployment, live, cluster, path, debugger, jobs)
    broker = Broker(live, repository, invoker, server.name, cluster)
    caches = ServerCaches(live, cluster, connections, server.name)
    invoker.pubsub, invoker.caches = broker, caches
    live.listeners += [broker.reload, caches.reload]
    runtime = Runtime(*parts, broker, caches, shutdown=shutdown or asyncio.Event())
    runtime.background.append(caches)
    runtime.background.append(broker)
    runtime.background.append(FileChannels(runtime))
    runtime.background.append(WebSocketPart(runtime))
    runtime.background.append(AmqpChannels(live, invoker))
    await cluster.start()
    logger.info("server %s loaded %s modules, %s services", server.name, loaded, len(store.snapshot()))
    return runtime


def cluster_key(settings: Settings) -> Callable[[], ClusterKey]:
    """The cluster key, read (or made) when a secret is first stored or used: a cluster without secrets has none."""
    return cache(lambda: ClusterKey.load(settings.directory))


async def serve(runtime: Runtime, shutdown: asyncio.Event) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from .channels.specs import MAX_WS_MESSAGE
    from .http.app import build_app
    from .http.websocket import ping_interval

    config = Config()
    config.bind = [f"{runtime.server.host}:{runtime.server.port}"]
    config.accesslog = access_logger(runtime.settings.logs)
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACE
    config.websocket_max_message_size = MAX_WS_MESSAGE  # each channel's own max_message is checked per message
    config.websocket_ping_interval = ping_interval(runtime.live.of("websocket"))
    warm = asyncio.gather(runtime.engine.isolation.start(), HttpBus.warm())
    runtime.pickup.start()  # here, not in build_runtime: an in-process server (tests, tools) watches nothing
    for part in runtime.background:
        await part.start()
    stopping: list[float] = []

    async def trigger() -> None:
        await shutdown.wait()
        stopping.append(time.monotonic())

    try:
        await hypercorn_serve(build_app(runtime), config, shutdown_trigger=trigger)  # type: ignore[arg-type]
    finally:
        warm.cancel()
        left = GRACE - (time.monotonic() - stopping[0]) if stopping else GRACE
        await runtime.close(grace=max(left, 0.5))


def run_server(directory: Path, server_name: str) -> None:
    """Run one server in the foreground until SIGTERM or SIGINT (what ``splice start`` launches)."""
    started = time.perf_counter()
    drop_working_directory_from_path()
    settings = load_settings(directory, os.environ)
    log_file = settings.server_dir(server_name) / "logs" / "server.log"
    configure_server_logging(log_file, settings.log_level, settings.logs)

    restart = False
    pool: list[WorkerPool] = []

    async def main() -> None:
        nonlocal restart
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if not shutdown.is_set():
                shutdown.set()
                _watchdog(pool)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        runtime = await build_runtime(settings, server_name, shutdown)
        pool.append(runtime.invoker.pool)
        # What start-up made lives as long as the server: keep it out of every later full collection,
        # which otherwise walks it all and shows as 40-50 ms pauses under load. (No gc.collect() first:
        # it would add ~40 ms to the start for the little garbage start-up leaves.)
        gc.freeze()
        logger.info(
            "server %s listening on %s after %.0f ms",
            server_name,
            runtime.server.url,
            (time.perf_counter() - started) * 1000,
        )
        await serve(runtime, shutdown)
        restart = runtime.debugger.restart_requested
        logger.info("server %s stopped%s", server_name, "; restarting without the debugger" if restart else "")

    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(main())
    if pool and pool[0].in_threads() and not restart:
        # Threads of plain 'def' services still run (a thread cannot be killed) and would keep the interpreter
        # from ending: say which, then end without waiting for them.
        _exit_now(pool, "stopped", 0)
    if restart:  # debugpy cannot stop listening: the same process (same pid, same command) starts afresh
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _still_running(pool: list[WorkerPool]) -> str:
    calls = pool[0].in_threads() if pool else []
    return ", ".join(call.describe() for call in calls) or "none"


def _exit_now(pool: list[WorkerPool], how: str, status: int) -> None:
    logger.error(
        "server %s with service calls still running in worker threads, not waiting for them: %s",
        how,
        _still_running(pool),
    )
    logging.shutdown()
    os._exit(status)


def _watchdog(pool: list[WorkerPool]) -> None:
    """After SIGTERM: whatever still runs (a closing part that hangs, a loop blocked by user code), the process
    ends ``HARD_STOP`` seconds later."""

    def expire() -> None:
        logger.error("the server did not stop within %g s of SIGTERM", HARD_STOP)
        _exit_now(pool, "exits", 1)

    timer = threading.Timer(HARD_STOP, expire)
    timer.daemon = True
    timer.start()
