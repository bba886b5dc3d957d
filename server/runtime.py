"""What one running server holds: its settings, store, invoker, deployment engine, channels and tokens.

Built by ``bootstrap`` (the composition root) and handed to the HTTP edge.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ServerSettings, Settings
from .deploy import DeploymentEngine
from .invoker import Invoker
from .routing import Route, Router
from .security import SecurityDefinition, Verifier
from .store import ServiceStore

if TYPE_CHECKING:
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
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)

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
