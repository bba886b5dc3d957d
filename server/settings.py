"""The settings objects of a cluster's processes: frozen, typed, read once at start and passed down.

``splice.server.config`` reads them from ``cluster.toml`` (and re-exports them), ``splice.server.environment`` from
``SPLICE_*`` variables alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .core.errors import ConfigError

CONFIG_FILE = "cluster.toml"
TOKEN_FILE = "admin-token"


MAX_WORKERS = 64
WORKER_PORT_STEP = 100
"""Attach points of a server's worker K are ``WORKER_PORT_STEP * (K - 1)`` above its first one."""
_WORKER_SUFFIX = re.compile(r"\.w([0-9]+)$")


def workers_of(value: object, file: str, where: str) -> int:
    """``workers``: a whole number from 1 to ``MAX_WORKERS``, or ``"auto"`` (the CPUs this process may use)."""
    if value == "auto":
        return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
        why = f'must be a whole number from 1 to {MAX_WORKERS} or "auto", got {value!r}'
        raise ConfigError(file, why, f"{where}.workers")
    return value


def member_name(server: str, worker: int, workers: int) -> str:
    """The cluster name of worker ``worker`` of ``server``: the server's own name when it runs one process,
    otherwise ``<server>.w<K>`` for every worker (``server1.w1``, ``server1.w2``)."""
    return server if workers <= 1 else f"{server}.w{worker}"


def split_member(member: str) -> tuple[str, int | None]:
    """``server1.w2`` -> ``("server1", 2)``; a server of one process -> ``(name, None)``."""
    found = _WORKER_SUFFIX.search(member)
    if found is None:
        return member, None
    return member[: found.start()], int(found.group(1))


@dataclass(frozen=True)
class ServerSettings:
    name: str
    host: str
    port: int
    index: int
    advertise: str | None = None
    """The URL the other servers and the scheduler reach this one at (``$SPLICE_ADVERTISE``: a pod's IP); ``None``:
    where it listens."""
    workers: int = 1
    """Worker processes sharing ``port`` (``workers = N`` or ``"auto"``: the CPUs this process may use)."""
    worker: int = 1
    """Which of them this process is (1 to ``workers``); 1 in a server of one process."""

    @property
    def member(self) -> str:
        """This process's name in the cluster (``servers`` rows, deploy outcomes, the bus): ``member_name``."""
        return member_name(self.name, self.worker, self.workers)

    @property
    def url(self) -> str:
        if self.advertise:
            return self.advertise
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class LoadBalancerSettings:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class SchedulerSettings:
    """``[scheduler]``: how the cluster's scheduler processes (``[[schedulers]]``) behave."""

    names: tuple[str, ...] = ()
    """The scheduler processes of this directory (``[[schedulers]] name = ...``); one of them is active."""
    poll_interval: float = 0.25
    """How often the active scheduler looks for changed jobs (changes reach it within this)."""
    lease_ttl: float = 3.0
    """How long the active scheduler's lease lasts unless renewed; a standby takes over after it ran out."""
    misfire_grace: float = 30.0
    """A slot later than this is missed, and the job's misfire policy decides (run once, or skip)."""
    history_days: float = 7.0
    """Runs older than this are deleted from the history."""


@dataclass(frozen=True)
class DebugSettings:
    """``[debug]``: a debugpy attach point in every server process; off unless enabled (here or at run time)."""

    enabled: bool = False
    """Listen from the start; ``splice debug enable`` (``POST /splice/admin/debug``) does it at run time."""
    host: str = "127.0.0.1"
    """Where attach points listen; anyone who can connect can run code in the server, so another address
    than the loopback needs ``allow_remote = true``."""
    port: int = 5680
    """The first server's attach point; the server at index N of ``[[servers]]`` listens on ``port + N``."""
    allow_remote: bool = False

    def port_of(self, server: ServerSettings, worker: int | None = None) -> int:
        """The attach point of ``worker`` (default: ``server.worker``) of ``server``: ``port + index``, and
        ``WORKER_PORT_STEP`` more for each worker after the first (5680, 5780, 5880 for server 1's three)."""
        return self.port + server.index + WORKER_PORT_STEP * ((server.worker if worker is None else worker) - 1)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class CallSettings:
    """How service calls run (``[calls]``): what keeps blocking services from taking a server down."""

    timeout: float = 60.0
    """Seconds a call may run before its caller gets 504; a service's own ``timeout`` attribute overrides it."""
    threads: int = 40
    """Worker threads for plain ``def`` services (their hooks and ``handle``)."""
    queue: int = 100
    """Calls that may wait for a free worker thread; beyond it a call is refused at once with 503."""


LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LogSettings:
    """The server's log (``[logs]``, ``$SPLICE_LOG_FORMAT``, ``$SPLICE_ACCESS_LOG``)."""

    format: str = "text"
    """``text`` (one line per record) or ``json`` (one JSON object per line, with the cid)."""
    access: bool = False
    """One line per HTTP request (method, path, status, duration, cid) on the logger ``splice.access``."""


@dataclass(frozen=True)
class Settings:
    directory: Path
    cluster_name: str
    odb_url: str
    servers: tuple[ServerSettings, ...]
    max_module_bytes: int = 1024 * 1024
    import_timeout: float = 5.0
    log_level: str = "INFO"
    redis_url: str | None = None
    """The cluster bus: Redis pub/sub when set, else servers call each other over HTTP."""
    cluster_timeout: float = 10.0
    """How long a deploy waits for the other servers to confirm."""
    sync_interval: float = 1.0
    """How often a server checks the ODB for deployments it missed, and says it is alive."""
    pickup_dirs: tuple[Path, ...] = ()
    load_balancer: LoadBalancerSettings | None = None
    scheduler: SchedulerSettings = SchedulerSettings()
    debug: DebugSettings = DebugSettings()
    openapi_public: bool = False
    """``[openapi] public = true``: ``GET /splice/openapi.json`` (the channels' document) answers without the token."""
    dashboard_dir: Path | None = None
    calls: CallSettings = CallSettings()
    logs: LogSettings = LogSettings()
    """``[dashboard] dir = "dashboard"``: the directory (holding ``dashboard.toml``) of the dashboard that
    ``splice start`` runs with the servers; ``None``: the cluster has none here."""
    admin_token_sha256: str | None = None
    """The digest of ``$SPLICE_ADMIN_TOKEN``: an admin token ``splice server run`` registers at start (the token
    itself is not kept here)."""
    from_environment: bool = False
    """Configured by ``settings_from_environment`` (no ``cluster.toml``)."""

    @property
    def token_file(self) -> Path:
        return self.directory / TOKEN_FILE

    def server(self, name: str) -> ServerSettings:
        for server in self.servers:
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers)
        raise ConfigError(str(self.directory / CONFIG_FILE), f"no server named '{name}' (known: {known})", "servers")

    def server_dir(self, name: str) -> Path:
        return self.directory / name

    def deployed_dir(self, name: str) -> Path:
        return self.server_dir(name) / "work" / "deployed"

    def process_dir(self, server: ServerSettings) -> Path:
        """Where this process of ``server`` keeps its own files (``logs/``, ``work/deployed/``): the server's
        directory for a server of one process, ``<server dir>/workers/<K>`` for its worker K otherwise (no two
        processes write one file)."""
        if server.workers <= 1:
            return self.server_dir(server.name)
        return self.server_dir(server.name) / "workers" / str(server.worker)

    def process_deployed_dir(self, server: ServerSettings) -> Path:
        """The deployed modules of this process of ``server`` (an editor maps its project root onto it)."""
        return self.process_dir(server) / "work" / "deployed"


def resolve_odb_url(url: str, directory: Path) -> str:
    """Make a relative SQLite path absolute (relative to the cluster directory); plain ``sqlite://`` gets aiosqlite."""
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix):
        path = url[len(prefix) :]
        if path and not path.startswith("/") and path != ":memory:":
            return prefix + str((directory / path).resolve())
    return url


__all__ = [
    "CONFIG_FILE",
    "LOG_FORMATS",
    "LOOPBACK",
    "TOKEN_FILE",
    "CallSettings",
    "DebugSettings",
    "LoadBalancerSettings",
    "LogSettings",
    "SchedulerSettings",
    "ServerSettings",
    "Settings",
    "resolve_odb_url",
]
