"""What one running server holds: its settings, store, invoker, deployment engine, channels and tokens.

Built by ``bootstrap`` (the composition root) and handed to the HTTP edge.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .channels.routing import Route, Router
from .channels.security import SecurityDefinition, Verifier
from .config import ServerSettings, Settings
from .core.invoker import Invoker
from .core.store import ServiceStore
from .declare.apply import apply_file
from .deploy.engine import DeploymentEngine

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from .cluster.member import ClusterMember
    from .cluster.pickup import Pickup
    from .debug import Debugger
    from .jobs.manager import Jobs
    from .odb import OdbRepository


@dataclass
class Runtime:
    settings: Settings
    server: ServerSettings
    repository: OdbRepository
    store: ServiceStore
    invoker: Invoker
    engine: DeploymentEngine
    router: Router = field(default_factory=lambda: Router([]))
    securities: dict[str, SecurityDefinition] = field(default_factory=dict)
    verifier: Verifier = field(default_factory=Verifier)
    token_hashes: frozenset[str] = frozenset()
    cluster: ClusterMember | None = None
    pickup: Pickup | None = None
    jobs: Jobs | None = None
    debugger: Debugger | None = None
    shutdown: asyncio.Event | None = None
    """Set to stop serving (SIGTERM, or a restart without the debugger)."""
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    """The environment this server started with: where a declaration file applied here finds its secrets."""

    async def reload_channels(self) -> None:
        securities = {
            row["name"]: SecurityDefinition(
                row["name"], row["kind"], row["secret_hash"], row["username"], row["header"]
            )
            for row in await self.repository.list_security()
        }
        routes = [
            Route(row["name"], row["path"], frozenset(row["methods"]), row["service"], row["security"])
            for row in await self.repository.list_channels()
        ]
        self.securities = securities
        self.router = Router(routes)

    async def reload_tokens(self) -> None:
        self.token_hashes = frozenset(await self.repository.token_hashes())

    async def reload_config(self) -> None:
        await self.reload_channels()
        await self.reload_tokens()

    async def propagate(
        self, sequence: int, peers: asyncio.Future[list[dict[str, Any]]] | None = None
    ) -> list[dict[str, object]]:
        """Every server's outcome of deployment ``sequence`` (just this one's when it runs alone)."""
        if self.cluster is None:
            return [{"server": self.server.name, "status": "deployed", "sequence": self.engine.applied}]
        return await self.cluster.propagate(sequence, await peers if peers is not None else None)

    def look_up_peers(self) -> asyncio.Future[list[dict[str, Any]]] | None:
        """Start finding the live servers now, to overlap that query with a deployment under way."""
        return asyncio.ensure_future(self.cluster.live_peers()) if self.cluster is not None else None

    async def config_changed(self, what: str, by: str = "admin-api") -> list[dict[str, object]]:
        """After a change of channels or security here: record it, reload here, tell the others."""
        sequence = await self.repository.record_config_change(what, by)
        if self.cluster is not None:
            await self.cluster.catch_up()
        else:
            await self.reload_config()
        return await self.propagate(sequence)

    async def apply_config(self, path: Path, prune: bool = False) -> dict[str, object]:
        """Apply the declaration file ``path`` (``splice.toml``, ``*.splice.toml``) to the whole cluster.

        Its secrets (``password_env``, ``key_env``) come from this server's environment. Objects the file
        does not declare stay unless ``prune``. Raises ``DeclarationError`` (file, line, field) if the file is
        wrong; answers the plan carried out, with ``changed`` false when the cluster already held it.
        """
        where = f"the environment of server {self.server.name}"
        return await apply_file(self, path, self.environ, where, by=f"file:{path}", prune=prune)

    async def close(self) -> None:
        if self.pickup is not None:
            await self.pickup.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.invoker.drain()
        self.engine.close()
        await self.engine.isolation.close()
        await self.repository.engine.dispose()
