"""The one deployment path: from "sources arrived" to "every server answered" (DESIGN.md steps 2 to 6).

Every source of a change goes through ``DeploymentPath``: the admin API's deploy, undeploy and rollback, the
pickup directory's batches, and anything later (the dashboard). One change is:

1. look up the live peers, beside the local work, to save that round trip;
2. validate, persist and load on this server (``DeploymentEngine``: all or nothing, the previous version keeps
   serving if anything is wrong); a refusal cancels the look-up and reaches the caller as ``DeployError``;
3. tell the cluster the deployment sequence (the bus is the doorbell, the ODB the truth);
4. answer each server's outcome (deployed, failed with the error, timed out), this server first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .engine import DeploymentEngine
from .records import DeployResult, ModuleSource, UndeployResult
from .rollback import VersionStore, rollback

logger = logging.getLogger(__name__)
R = TypeVar("R")
ServerOutcome = dict[str, Any]
"""One server's answer (``server``, ``status``: deployed/failed/timeout, ``sequence``, ``error``, timings): JSON
as the cluster bus carries it."""


class Cluster(Protocol):
    """What the path needs of this server's cluster membership (``splice.server.cluster.ClusterMember``)."""

    async def live_peers(self) -> list[dict[str, Any]]: ...

    async def propagate(self, sequence: int, peers: list[dict[str, Any]] | None = None) -> list[ServerOutcome]: ...


@dataclass(frozen=True)
class Rollout(Generic[R]):
    """A change as the cluster took it: this server's result and every server's outcome."""

    result: R
    servers: list[ServerOutcome]

    @property
    def ok(self) -> bool:
        """Whether every server confirmed the change."""
        return all(s.get("status") == "deployed" for s in self.servers)


class DeploymentPath:
    """Carries changes from this server to the whole cluster; one per server."""

    def __init__(self, engine: DeploymentEngine, cluster: Cluster, versions: VersionStore) -> None:
        self.engine = engine
        self.cluster = cluster
        self.versions = versions

    async def run(
        self, change: Callable[[DeploymentEngine], Awaitable[R]], sequence_of: Callable[[R], int | None]
    ) -> Rollout[R]:
        """Apply ``change`` to this server's engine, then tell the cluster the sequence it recorded.

        ``sequence_of`` reads that sequence from the change's result; ``None`` means nothing was recorded
        and no server needs telling.
        """
        peers = asyncio.ensure_future(self.cluster.live_peers())
        try:
            result = await change(self.engine)
        except BaseException:
            peers.cancel()
            raise
        sequence = sequence_of(result)
        if sequence is None:
            peers.cancel()
            return Rollout(result, [])
        return Rollout(result, await self.cluster.propagate(sequence, await peers))

    async def deploy(self, sources: Sequence[ModuleSource], by: str) -> Rollout[DeployResult]:
        """Deploy ``sources`` together on every server; raises ``DeployError`` (nothing changed anywhere)."""
        return await self.run(lambda engine: engine.deploy(sources, by=by), _sequence)

    async def undeploy(self, paths: Sequence[str], by: str) -> Rollout[UndeployResult]:
        """Remove the modules at ``paths`` and their services from every server."""
        return await self.run(lambda engine: engine.undeploy(paths, by=by), _sequence)

    async def rollback(self, path: str, version: int, by: str) -> Rollout[DeployResult]:
        """Deploy stored version ``version`` of ``path`` again, as a new version, on every server."""
        return await self.run(lambda engine: rollback(self.versions, engine, path, version, by), _sequence)

    async def tell(self, sequence: int) -> list[ServerOutcome]:
        """Every server's outcome of ``sequence``, recorded by someone else (a configuration change)."""
        return await self.cluster.propagate(sequence)


def _sequence(result: DeployResult | UndeployResult) -> int:
    return result.sequence
