"""What one running server holds: its settings, store, invoker, deployment path, cluster membership, channels.

Built whole by ``bootstrap`` (the composition root; nothing is filled in afterwards) and handed to the HTTP edge.
The parts that change at run time (channels, security definitions, admin tokens) live in ``LiveConfig``, which
the cluster membership reloads when another server records a change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from .cache.specs import CacheSpec
from .channels.routing import Route, Router
from .channels.security import SecurityDefinition, Verifier
from .channels.specs import ChannelOfAnyKind, channel_from_row
from .cluster.pickup import Pickup
from .config import ServerSettings, Settings
from .connections import Connections
from .core.context import current_actor
from .core.invoker import Invoker
from .core.metrics import Metrics
from .core.store import ServiceStore
from .declare.apply import apply_file
from .deploy import DeploymentEngine, DeploymentPath, ServerOutcome
from .pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping
    from pathlib import Path

    from .cache.caches import ServerCaches
    from .cluster.member import ClusterMember
    from .debug import Debugger
    from .jobs.manager import Jobs
    from .odb import OdbRepository
    from .pubsub.broker import Broker


logger = logging.getLogger(__name__)


class Background(Protocol):
    """A part of a server that takes calls on its own (not through HTTP): started when it serves, stopped first."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Take no new work, let what runs finish (or hand it back), then return."""
        ...


class LiveConfig:
    """Channels, security definitions, admin token digests and outgoing connections as the ODB holds them.

    Reloaded on every change of configuration (here, or told by another server).
    """

    def __init__(self, repository: OdbRepository, connections: Connections) -> None:
        self.repository = repository
        self.connections = connections
        """The outgoing connections services use by name (``self.out``)."""
        self.router = Router([])
        self.securities: dict[str, SecurityDefinition] = {}
        self.verifier = Verifier()
        self.token_hashes: frozenset[str] = frozenset()
        self.channels: dict[str, list[ChannelOfAnyKind]] = {}
        """Channels of kinds other than REST (``websocket``, ``jsonrpc``, ``amqp``, ``file``), by kind."""
        self.topics: dict[str, TopicSpec] = {}
        self.subscriptions: dict[str, SubscriptionSpec] = {}
        self.permissions: dict[str, TopicPermission] = {}
        """Topic permissions by security definition name."""
        self.caches: dict[str, CacheSpec] = {}
        """Caches declared in the ODB (the ``default`` one only when declared with other limits)."""
        self.listeners: list[Callable[[], Awaitable[None]]] = []
        """Called after each reload: what runs channels in the background (AMQP consumers, file watchers)."""

    def of(self, kind: str) -> list[ChannelOfAnyKind]:
        """This server's channels of ``kind`` (not ``rest``: those are in ``router``)."""
        return self.channels.get(kind, [])

    async def reload(self) -> None:
        securities = {
            row["name"]: SecurityDefinition(
                row["name"], row["kind"], row["secret_hash"], row["username"], row["header"]
            )
            for row in await self.repository.list_security()
        }
        routes: list[Route] = []
        others: dict[str, list[ChannelOfAnyKind]] = {}
        for row in await self.repository.list_channels():
            if row["kind"] in ("rest", None):
                routes.append(
                    Route(row["name"], row["path"], frozenset(row["methods"]), row["service"], row["security"])
                )
                continue
            try:
                spec = channel_from_row(row)
            except ValueError as exc:  # a row an older or newer Splice wrote
                logger.error("channel %s (%s) is not usable on this server: %s", row["name"], row["kind"], exc)
                continue
            others.setdefault(spec.kind, []).append(spec)
        tokens = frozenset(await self.repository.token_hashes())
        self.securities, self.router, self.token_hashes = securities, Router(routes), tokens
        self.channels = others
        self.topics = stored_specs(TopicSpec, await self.repository.list_topics())
        self.subscriptions = stored_specs(SubscriptionSpec, await self.repository.list_subscriptions())
        permissions = stored_specs(TopicPermission, await self.repository.list_permissions(), key="security")
        self.permissions = permissions
        self.caches = stored_specs(CacheSpec, await self.repository.list_caches())
        await self.connections.reload(await self.repository.list_outgoing())
        for listener in list(self.listeners):
            try:
                await listener()
            except Exception:
                logger.exception("reacting to a configuration change failed")


S = TypeVar("S", bound=BaseModel)


def stored_specs(cls: type[S], rows: Iterable[dict[str, object]], key: str = "name") -> dict[str, S]:
    """Stored definitions as specs by name; a row this Splice cannot read (an older or newer one wrote it) is logged
    and left out. What ``LiveConfig`` holds, and what the admin API checks a change against."""
    found: dict[str, S] = {}
    for row in rows:
        try:
            found[str(row[key])] = cls.model_validate(row, strict=False)
        except ValidationError as exc:
            logger.error("%s %s is not usable on this server: %s", cls.__name__, row.get(key), exc)
    return found


@dataclass
class Runtime:
    settings: Settings
    server: ServerSettings
    repository: OdbRepository
    store: ServiceStore
    invoker: Invoker
    engine: DeploymentEngine
    live: LiveConfig
    cluster: ClusterMember
    deployments: DeploymentPath
    """The one deployment path: every deploy, undeploy, rollback and pickup batch goes through it."""
    debugger: Debugger
    jobs: Jobs | None
    """``None`` only on a server that keeps no jobs (declared jobs are then refused)."""
    broker: Broker
    """Pub/sub: publish, deliver to push subscriptions, pull, acknowledge."""
    caches: ServerCaches
    """The caches services use (``self.cache``), kept in step with the other servers'."""
    pickup: Pickup = field(init=False)
    background: list[Background] = field(default_factory=list)
    """What runs channels in the background (AMQP consumers, file channels): started by ``serve``, stopped first
    at ``close`` (so that no new call starts while the rest shuts down)."""
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop serving (SIGTERM, or a restart without the debugger)."""
    draining: bool = False
    """Set before a planned restart: ``/splice/ping`` answers 503 so the balancer sends new requests elsewhere."""
    private_url: str | None = None
    """A worker of a server of several (``[[servers]] workers``): its own address, registered in the ODB, where
    peers call it (the server's port is shared by its workers). ``None``: the server's URL."""
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    """The environment this server started with: where a declaration file applied here finds its secrets."""

    def __post_init__(self) -> None:
        self.pickup = Pickup(self)

    @property
    def metrics(self) -> Metrics:
        """Every service call's outcome and duration on this server (what the invoker records)."""
        return self.invoker.metrics

    @property
    def router(self) -> Router:
        return self.live.router

    @property
    def securities(self) -> dict[str, SecurityDefinition]:
        return self.live.securities

    @property
    def verifier(self) -> Verifier:
        return self.live.verifier

    @property
    def token_hashes(self) -> frozenset[str]:
        return self.live.token_hashes

    async def config_changed(self, what: str, by: str | None = None) -> list[ServerOutcome]:
        """After a change of channels or security here: record it, reload here, tell the others. ``by`` defaults
        to who makes the admin call under way (``X-Splice-Actor``, else ``admin-api``)."""
        sequence = await self.repository.record_config_change(what, by or current_actor.get())
        await self.cluster.catch_up()
        return await self.deployments.tell(sequence)

    async def apply_config(self, path: Path, prune: bool = False) -> dict[str, object]:
        """Apply the declaration file ``path`` (``splice.toml``, ``*.splice.toml``) to the whole cluster.

        Its secrets (``password_env``, ``key_env``, ``token_env``) come from this server's environment. Objects
        the file does not declare stay unless ``prune``. Raises ``DeclarationError`` (file, line, field) if the file is
        wrong; answers the plan carried out, with ``changed`` false when the cluster already held it.
        """
        where = f"the environment of server {self.server.name}"
        return await apply_file(self, path, self.environ, where, by=f"file:{path}", prune=prune)

    async def close(self, grace: float = 5.0) -> None:
        """Stop the background parts, the cluster membership and the connections; background calls under way get
        up to ``grace`` seconds to end (what is left of the server's grace period)."""
        for part in reversed(self.background):
            try:
                await part.stop()
            except Exception:
                logger.exception("stopping %s failed", type(part).__name__)
        await self.pickup.stop()
        await self.cluster.stop()
        await self.invoker.drain(grace)
        await self.live.connections.close()
        self.engine.close()
        await self.engine.isolation.close()
        await self.repository.engine.dispose()
