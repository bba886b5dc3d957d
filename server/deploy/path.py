"""The one deployment path: from "sources arrived" to "every server answered" (DESIGN.md steps 2 to 6).

Every source of a change goes through ``DeploymentPath``: the admin API's deploy, undeploy and rollback, the
pickup directory's batches, and anything later (the dashboard). One change is:

1. look up the live peers, beside the local work, to save that round trip;
2. validate, persist and load on this server (``DeploymentEngine``: all or nothing, the previous version keeps
   serving if anything is wrong); a refusal cancels the look-up and reaches the caller as ``DeployError``;
3. tell the cluster the deployment sequence (the bus is the doorbell, the ODB the truth);
4. answer each server's outcome, this server first, and one for every server of the cluster: deployed (with the
   sequence that server has applied, never below the change's), failed (with the error), timed out (it did not
   confirm within ``cluster_timeout``: alive but busy or stopped; it catches up from the ODB when it answers) or
   down (not seen alive lately, so not asked; it catches up from the ODB when it starts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from .engine import DeploymentEngine
from .records import DeployResult, ModuleSource, UndeployResult
from .rollback import VersionStore, rollback

logger = logging.getLogger(__name__)
R = TypeVar("R")
ServerOutcome = dict[str, Any]
"""One server's answer (``server``, ``status``: deployed/failed/timed_out/down, ``sequence``, ``error``, timings):
JSON as the cluster bus carries it."""
RETIRED_AFTER = 3600.0
"""Seconds after which a server not seen alive is taken as retired (renamed, scaled down) and no longer listed."""


class Cluster(Protocol):
    """What the path needs of this server's cluster membership (``splice.server.cluster.ClusterMember``)."""

    def live_among(self, servers: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    async def catch_up(self) -> dict[str, Any]: ...

    async def propagate(
        self, sequence: int, peers: list[dict[str, Any]] | None = None, change: dict[str, Any] | None = None
    ) -> list[ServerOutcome]: ...


class Roster(VersionStore, Protocol):
    """What the path reads from the ODB: the stored versions (rollback) and every server that registered."""

    async def servers(self) -> list[dict[str, Any]]: ...


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

    def __init__(self, engine: DeploymentEngine, cluster: Cluster, versions: Roster) -> None:
        self.engine = engine
        self.cluster = cluster
        self.versions = versions

    async def run(
        self,
        change: Callable[[DeploymentEngine], Awaitable[R]],
        sequence_of: Callable[[R], int | None],
        carried_of: Callable[[R], dict[str, Any] | None] = lambda result: getattr(result, "change", None),
    ) -> Rollout[R]:
        """Apply ``change`` to this server's engine, then tell the cluster the sequence it recorded.

        ``sequence_of`` reads that sequence from the change's result; ``None`` means nothing was recorded
        and no server needs telling. ``carried_of`` reads what the notice may carry of it (``DeployResult.change``)
        so that peers need not read the ODB; ``None``: they read it.
        """
        began = time.perf_counter()
        # Every server of the cluster, read once beside the local work: the live ones are told, the others listed.
        roster = asyncio.ensure_future(self.versions.servers())
        try:
            result = await change(self.engine)
        except BaseException:
            roster.cancel()
            raise
        sequence = sequence_of(result)
        if sequence is None:
            roster.cancel()
            return Rollout(result, [])
        changed = time.perf_counter()
        if self.engine.applied < sequence:
            # A change recorded elsewhere came in between (its notice not here yet): this server has not applied
            # everything up to its own change until it catches up, and its line must not say less than that.
            await self.cluster.catch_up()
        servers = await roster
        carried = carried_of(result)  # a deployment as the peers can take it without the ODB
        outcomes = await self.cluster.propagate(sequence, self.cluster.live_among(servers), carried)
        told = time.perf_counter()
        rollout = Rollout(result, self._every_server(sequence, outcomes, servers))
        timings = getattr(result, "timings", None)
        if isinstance(timings, dict):
            # The cluster's part: from this server's change done until every peer's ack came (their own parts are
            # in each server's line: sync_ms = read_ms + load_ms, and ms, the round trip), and the whole path.
            timings.update(cluster_ms=_ms(changed, told), path_ms=_ms(began, time.perf_counter()))
        return rollout

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
        servers = await self.versions.servers()
        outcomes = await self.cluster.propagate(sequence, self.cluster.live_among(servers))
        return self._every_server(sequence, outcomes, servers)

    def _every_server(
        self, sequence: int, outcomes: list[ServerOutcome], servers: list[dict[str, Any]]
    ) -> list[ServerOutcome]:
        """``outcomes`` said plainly, and a line for each server of the cluster (``servers``) not asked (down)."""
        said = [outcome_of(sequence, outcome) for outcome in outcomes]
        asked = {outcome["server"] for outcome in said}
        now = datetime.now(UTC)
        for server in servers:
            if server["name"] in asked:
                continue
            away = None if server.get("last_seen") is None else (now - server["last_seen"]).total_seconds()
            if away is not None and away > RETIRED_AFTER:
                continue
            seen = "never seen alive" if away is None else f"not seen alive for {away:.1f} s"
            said.append(
                {
                    "server": server["name"],
                    "status": "down",
                    "sequence": server.get("last_sequence"),
                    "error": f"{seen}, so not asked; it catches up from the ODB when it runs again",
                }
            )
        return said


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 3)


def _sequence(result: DeployResult | UndeployResult) -> int:
    return result.sequence


def outcome_of(sequence: int, outcome: ServerOutcome) -> ServerOutcome:
    """One server's outcome of the change recorded as ``sequence``, said plainly.

    ``deployed`` only with the sequence that server has applied, at least ``sequence``; a server that did not
    confirm in time is ``timed_out`` with what that means; one that could not be reached is ``down``."""
    status, applied = outcome.get("status"), outcome.get("sequence")
    if status == "deployed" and (not isinstance(applied, int) or applied < sequence):
        shown = "no sequence" if applied is None else f"sequence {applied}"
        return {**outcome, "status": "failed", "error": f"confirmed {shown}, not {sequence} or later"}
    if status == "timed_out":
        why = outcome.get("error") or "no answer"
        return {
            **outcome,
            "error": f"{why} ([deploy] cluster_timeout): did not confirm; it catches up from the ODB when it answers",
        }
    if status == "unreachable":
        return {
            **outcome,
            "status": "down",
            "error": f"{outcome.get('error')}; it catches up from the ODB when it runs",
        }
    return outcome
