"""The composition root: wires the ODB, the store, the deployment engine and the HTTP edge, then serves.

Nothing else in Splice opens connections or starts processes on its own; this module does it once,
at start, for one server of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

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
from .settings import ServerSettings, member_name
from .supervisor import GRACE, HARD_STOP, WORKER_FILE

logger = logging.getLogger(__name__)
BACKLOG = 100
"""Connections a listening socket of a worker queues (Hypercorn's default)."""


async def build_runtime(
    settings: Settings,
    server_name: str,
    shutdown: asyncio.Event | None = None,
    worker: int = 1,
    url: str | None = None,
) -> Runtime:
    """Open the ODB, load every deployed module and the channels; the server is ready to answer after this.

    ``worker``: which worker process of the server this is (``[[servers]] workers``): a cluster member of its own
    (``server.member``), registered at ``url`` (its private address; default: the server's URL)."""
    from .channels.files import FileChannels
    from .http.websocket import WebSocketPart
    from .odb import OdbRepository, connect
    from .odb.engine import require_head
    from .odb.jobs import JobRepository

    server = replace(settings.server(server_name), worker=worker)
    engine = connect(settings.odb_url)
    try:
        await require_head(engine, settings.odb_url, settings.directory)
    except ConfigError:
        await engine.dispose()
        raise
    repository = OdbRepository(engine, settings.cluster_name)
    await repository.ensure_cluster(internal_token(settings))
    store = ServiceStore()
    deployment = DeploymentEngine(store, repository, settings.process_deployed_dir(server), Isolation(), settings)
    calls = settings.calls
    invoker = Invoker(store, server.name, Metrics(), timeout=calls.timeout, pool=WorkerPool(calls.threads, calls.queue))
    jobs = invoker.jobs = Jobs(JobRepository(repository))
    ide_root = settings.deployed_dir(settings.servers[0].name)
    debugger = Debugger(settings.debug, server, settings.process_deployed_dir(server), ide_root=ide_root)
    if settings.debug.enabled:
        await anyio.to_thread.run_sync(debugger.enable)
    loaded = await deployment.load_all()
    connections = Connections(server.name, cluster_key(settings))
    invoker.connections = connections
    live = LiveConfig(repository, connections)
    await live.reload()
    members = [member_name(server.name, k, server.workers) for k in range(1, server.workers + 1)]
    retired = await repository.retire_members(server.name, members)
    if retired:
        logger.info("server %s runs %s process(es): removed the rows of %s", server.name, server.workers, retired)
    await repository.register_server(server.member, url or server.url, os.getpid(), deployment.applied)
    http = HttpBus(server.member, repository.internal_token)
    bus: Bus = RedisBus(settings.redis_url, settings.cluster_name, server.member, http) if settings.redis_url else http
    cluster = ClusterMember(settings, server, repository, deployment, bus, live.reload)
    path = DeploymentPath(deployment, cluster, repository)
    parts = (settings, server, repository, store, invoker, deployment, live, cluster, path, debugger, jobs)
    broker = Broker(live, repository, invoker, server.member, cluster)  # its claims are this process's
    caches = ServerCaches(live, cluster, connections, server.name)
    invoker.pubsub, invoker.caches = broker, caches
    live.listeners += [broker.reload, caches.reload]
    runtime = Runtime(*parts, broker, caches, shutdown=shutdown or asyncio.Event(), private_url=url)
    runtime.background.append(caches)
    runtime.background.append(broker)
    runtime.background.append(FileChannels(runtime))  # each worker its own work area (named after its member)
    runtime.background.append(WebSocketPart(runtime))
    runtime.background.append(AmqpChannels(live, invoker))
    await cluster.start()
    logger.info("server %s loaded %s modules, %s services", server.member, loaded, len(store.snapshot()))
    return runtime


def cluster_key(settings: Settings) -> Callable[[], ClusterKey]:
    """The cluster key, read (or made) when a secret is first stored or used: a cluster without secrets has none."""
    return cache(lambda: ClusterKey.load(settings.directory))


async def serve(runtime: Runtime, shutdown: asyncio.Event, private: socket.socket | None = None) -> None:
    """Serve until ``shutdown``. A worker of a server of several (``private``: its own listening socket, what
    peers call) binds the server's port now, with ``SO_REUSEPORT`` beside the other workers: only after
    ``build_runtime`` loaded every module, so a worker started again takes no request before it caught up."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from .channels.specs import MAX_WS_MESSAGE
    from .http.app import build_app
    from .http.websocket import ping_interval

    config = Config()
    server = runtime.server
    if private is None:
        config.bind = [f"{server.host}:{server.port}"]
    else:
        try:
            public = listening_socket(server.host, server.port, reuse_port=True)
        except OSError:
            private.close()
            await runtime.close(grace=0.5)  # out of the cluster now, not once its heartbeat is old
            raise
        config.bind = [f"fd://{public.detach()}", f"fd://{private.detach()}"]  # Hypercorn owns (and closes) them
    config.accesslog = access_logger(runtime.settings.logs)
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACE
    config.websocket_max_message_size = MAX_WS_MESSAGE  # each channel's own max_message is checked per message
    config.websocket_ping_interval = ping_interval(runtime.live.of("websocket"))
    # Started beside serving, so the first ping does not wait for them; ended (and their errors read) below.
    isolation = asyncio.ensure_future(runtime.engine.isolation.start())
    warm = asyncio.ensure_future(HttpBus.warm())
    if server.worker == 1:  # a server's workers share its pickup lease (held by its name): one watcher is enough
        runtime.pickup.start()  # here, not in build_runtime: an in-process server (tests, tools) watches nothing
    for part in runtime.background:
        await part.start()
    stopping: list[float] = []

    async def trigger() -> None:
        await shutdown.wait()
        stopping.append(time.monotonic())

    if private is not None:
        _write_worker_file(runtime)
    try:
        await hypercorn_serve(build_app(runtime), config, shutdown_trigger=trigger)  # type: ignore[arg-type]
    finally:
        warm.cancel()
        await asyncio.wait([isolation, warm])  # the isolation worker is started whole, to be closed whole below
        for started in (isolation, warm):
            if not started.cancelled() and started.exception() is not None:
                logger.warning("starting in the background failed: %r", started.exception())
        left = GRACE - (time.monotonic() - stopping[0]) if stopping else GRACE
        await runtime.close(grace=max(left, 0.5))


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``port`` 0: one the system picks); with ``reuse_port``, beside the
    other workers of the server (each gets its share of the new connections)."""
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def private_socket(server: ServerSettings) -> tuple[socket.socket, str]:
    """A worker's own listening socket on an ephemeral port, and the URL its peers call it at: on the server's
    host (the advertised host in the URL when one is set; the loopback when the host is a wildcard)."""
    shown = urlsplit(server.advertise).hostname if server.advertise else None
    if shown is None:
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server.host, server.host)
    sock = listening_socket(server.host or "0.0.0.0", 0)
    port = sock.getsockname()[1]
    host = f"[{shown}]" if ":" in shown else shown
    return sock, f"http://{host}:{port}"


def _write_worker_file(runtime: Runtime) -> None:
    """``worker.json`` in the worker's process directory: what ``splice start`` and ``splice status`` read."""
    path = runtime.settings.process_dir(runtime.server) / WORKER_FILE
    url = runtime.private_url
    text = json.dumps({"worker": runtime.server.worker, "pid": os.getpid(), "url": url, "ready_at": time.time()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def run_server(directory: Path, server_name: str, worker: int | None = None) -> int | None:
    """Run one server in the foreground until SIGTERM or SIGINT (what ``splice start`` launches).

    A server of several workers (``[[servers]] workers``) runs as a supervisor of its worker processes
    (``splice.server.supervisor``) unless ``worker`` says which of them this process is."""
    started = time.perf_counter()
    event_loop.defer_httpx_cli()  # before anything imports httpx (the cluster bus, outgoing REST connections)
    drop_working_directory_from_path()
    settings = load_settings(directory, os.environ)
    server = settings.server(server_name)
    if server.workers > 1 and worker is None:
        from .supervisor import run_supervisor

        return run_supervisor(settings, server)
    server = replace(server, worker=worker or 1)
    log_file = settings.process_dir(server) / "logs" / "server.log"
    configure_server_logging(log_file, settings.log_level, settings.logs)
    private: list[socket.socket] = []
    url: str | None = None
    if server.workers > 1:
        sock, url = private_socket(server)
        private.append(sock)
    name = server.member

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
        runtime = await build_runtime(settings, server_name, shutdown, server.worker, url)
        pool.append(runtime.invoker.pool)
        # What start-up made lives as long as the server: keep it out of every later full collection,
        # which otherwise walks it all and shows as 40-50 ms pauses under load. (No gc.collect() first:
        # it would add ~40 ms to the start for the little garbage start-up leaves.)
        gc.freeze()
        logger.info(
            "server %s listening on %s after %.0f ms",
            name,
            runtime.server.url + (f" (and {url})" if url else ""),
            (time.perf_counter() - started) * 1000,
        )
        try:
            await serve(runtime, shutdown, private[0] if private else None)
        finally:
            if private:
                (settings.process_dir(server) / WORKER_FILE).unlink(missing_ok=True)
        restart = runtime.debugger.restart_requested
        logger.info("server %s stopped%s", name, "; restarting without the debugger" if restart else "")

    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(main())
    if pool and pool[0].in_threads() and not restart:
        # Threads of plain 'def' services still run (a thread cannot be killed) and would keep the interpreter
        # from ending: say which, then end without waiting for them.
        _exit_now(pool, "stopped", 0)
    if restart:  # debugpy cannot stop listening: the same process (same pid, same command) starts afresh
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return None


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
