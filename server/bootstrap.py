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
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import anyio.to_thread

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
from .debug import Debugger
from .deploy import DeploymentEngine, DeploymentPath
from .deploy.isolate import Isolation
from .deploy.loader import drop_working_directory_from_path
from .jobs.manager import Jobs
from .logs import access_logger, configure_server_logging
from .pubsub.broker import Broker
from .runtime import LiveConfig, Runtime

logger = logging.getLogger(__name__)


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
    invoker = Invoker(store, server.name, Metrics())
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
    config.graceful_timeout = 5.0
    config.websocket_max_message_size = MAX_WS_MESSAGE  # each channel's own max_message is checked per message
    config.websocket_ping_interval = ping_interval(runtime.live.of("websocket"))
    warm = asyncio.gather(runtime.engine.isolation.start(), HttpBus.warm())
    runtime.pickup.start()  # here, not in build_runtime: an in-process server (tests, tools) watches nothing
    for part in runtime.background:
        await part.start()
    try:
        await hypercorn_serve(build_app(runtime), config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
    finally:
        warm.cancel()
        await runtime.close()


def run_server(directory: Path, server_name: str) -> None:
    """Run one server in the foreground until SIGTERM or SIGINT (what ``splice start`` launches)."""
    started = time.perf_counter()
    drop_working_directory_from_path()
    settings = load_settings(directory, os.environ)
    log_file = settings.server_dir(server_name) / "logs" / "server.log"
    configure_server_logging(log_file, settings.log_level, settings.logs)

    restart = False

    async def main() -> None:
        nonlocal restart
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        runtime = await build_runtime(settings, server_name, shutdown)
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
        asyncio.run(main())
    if restart:  # debugpy cannot stop listening: the same process (same pid, same command) starts afresh
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
