"""One batch of the pickup directory: read the files, plan, deploy what is fine, undeploy what is gone, report.

All or nothing per module: a batch is first deployed together (the engine orders it by imports); if
that is refused, the modules the refusal names, and every module of the batch that needs one of them,
are left out and the rest is tried again. When the refusal cannot be pinned on some modules (an import
that timed out names them all) the modules go one at a time, in dependency order. Deletions follow the
deployments, so a module that stopped importing a deleted one no longer holds it back.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from ..core.errors import DeployError, NotFound
from ..core.naming import module_name
from ..deploy import DeploymentEngine, ModuleSource
from ..deploy.modules import imports_of, load_order
from . import _pickup_rules as rules

if TYPE_CHECKING:
    from ..config import ServerSettings, Settings
    from ..deploy import DeploymentPath
    from .bus import Ack

logger = logging.getLogger(__name__)


class Leases(Protocol):
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool: ...

    async def release_lease(self, name: str, holder: str) -> None: ...


class Member(Protocol):
    async def catch_up(self) -> Ack: ...


class PickupHost(Protocol):
    """What the pickup component needs of its server (``splice.server.runtime.Runtime`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def server(self) -> ServerSettings: ...

    @property
    def repository(self) -> Leases: ...

    @property
    def cluster(self) -> Member: ...

    @property
    def engine(self) -> DeploymentEngine: ...

    @property
    def deployments(self) -> DeploymentPath: ...

    async def apply_config(self, path: Path, prune: bool = False) -> dict[str, object]: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one file of a batch."""

    path: str
    status: str
    """``deployed``, ``failed``, ``undeployed``, ``refused`` (undeploy), ``skipped``, ``applied`` (configuration)."""
    version: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "version": self.version, "error": self.error}


@dataclass
class Report:
    """One batch: what triggered it, each file's outcome, the deployment sequence and each server's answer."""

    directory: str
    trigger: str
    changes: int
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    outcomes: list[Outcome] = field(default_factory=list)
    sequence: int | None = None
    servers: list[dict[str, Any]] = field(default_factory=list)
    total_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    """Where the batch's time went: ``read_ms`` (the files), ``catch_up_ms``, ``deploy_ms`` (this server's
    deployments), ``cluster_ms`` (until every peer confirmed), ``configs_ms``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "trigger": self.trigger,
            "changes": self.changes,
            "started_at": self.started_at,
            "outcomes": [o.as_dict() for o in self.outcomes],
            "sequence": self.sequence,
            "servers": self.servers,
            "total_ms": self.total_ms,
            "timings": self.timings,
        }


@dataclass
class Found:
    """What the directory holds in the scope of a batch."""

    modules: dict[str, bytes] = field(default_factory=dict)
    configs: list[str] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)


def read_files(root: Path, scope: Collection[str] | None) -> Found:
    """The module and configuration files under ``root`` (only those in ``scope`` unless it is ``None``)."""
    found = Found()
    tops = [root] if scope is None else [root / rel for rel in sorted(scope)]
    for top in tops:
        if top.is_dir():
            for directory, subdirs, files in os.walk(top):
                base = Path(directory)
                subdirs[:] = [d for d in subdirs if not rules.ignored(d)]
                for name in files:
                    _add(found, root, base / name)
        elif top.is_file():
            _add(found, root, top)
    return found


def _add(found: Found, root: Path, path: Path) -> None:
    rel = path.relative_to(root).as_posix()
    kind = rules.kind(rel)
    if kind == "config" and rel not in found.configs:
        found.configs.append(rel)
    elif kind == "module" and rel not in found.modules:
        problem = rules.module_problem(rel)
        if problem:
            found.skipped.append(Outcome(rel, "skipped", error=problem))
            return
        try:
            found.modules[rel] = path.read_bytes()
        except OSError as exc:  # gone or unreadable since it was listed: the next change brings it back
            found.skipped.append(Outcome(rel, "skipped", error=f"cannot read it: {exc.strerror}"))


async def apply_batch(host: PickupHost, root: Path, scope: Collection[str] | None, trigger: str, by: str) -> Report:
    """Bring the cluster to what ``root`` holds (in ``scope``), tell every server, log and return the outcomes."""
    started = time.perf_counter()
    origin = rules.tag(str(root))
    report = Report(str(root), trigger, len(scope) if scope is not None else 0)
    found = await anyio.to_thread.run_sync(read_files, root, scope)
    digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in found.modules.items()}
    read = time.perf_counter()
    # The engine's records mirror the ODB once caught up, without reading every module's source again.
    await host.cluster.catch_up()
    caught_up = changed = time.perf_counter()
    plan = rules.plan(digests, list(host.engine.records.values()), origin, scope)
    report.outcomes.extend(found.skipped)
    sources, undecodable = _sources(found.modules, plan.deploy, origin)
    report.outcomes.extend(undecodable)

    carried: dict[str, Any] | None = None

    async def change(engine: DeploymentEngine) -> tuple[list[Outcome], list[Outcome], list[int]]:
        nonlocal changed, carried
        sequences: list[int] = []
        undeployed: list[Outcome] = []
        deployed = await _deploy(engine, root, sources, by, sequences) if sources else []
        if plan.undeploy:
            undeployed = await _undeploy(engine, root, plan.undeploy, by, sequences)
            failed = {o.path for o in deployed if o.status == "failed"}
            if failed and any(o.status == "undeployed" for o in undeployed):
                # A module may have clashed with one that is now gone (a service moved to another file): once more.
                retried = await _deploy(engine, root, [s for s in sources if s.path in failed], by, sequences)
                deployed = [o for o in deployed if o.path not in failed] + retried
        changed = time.perf_counter()
        last = engine.last_change
        if len(sequences) == 1 and last is not None and last["sequence"] == sequences[0]:
            carried = last  # one deployment (a saved file): the notice carries it, as a deploy call's does
        return deployed, undeployed, sequences

    rollout = await host.deployments.run(change, lambda done: max(done[2], default=None), lambda _: carried)
    told = time.perf_counter()
    deployed, undeployed, sequences = rollout.result
    report.outcomes[:0] = deployed  # as before: deployments first, then what was skipped, then undeployments
    report.outcomes.extend(undeployed)
    if sequences:
        report.sequence = max(sequences)
        report.servers = rollout.servers
    report.outcomes.extend(await _apply_configs(host, root, found.configs))
    ended = time.perf_counter()
    report.total_ms = _ms(started, ended)
    report.timings = {
        "read_ms": _ms(started, read),
        "catch_up_ms": _ms(read, caught_up),
        "deploy_ms": _ms(caught_up, changed),
        "cluster_ms": _ms(changed, told),
        "configs_ms": _ms(told, ended),
    }
    _log(root, report, len(plan.unchanged))
    return report


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 3)


def _sources(modules: dict[str, bytes], paths: Sequence[str], origin: str) -> tuple[list[ModuleSource], list[Outcome]]:
    sources, failed = [], []
    for rel in paths:
        try:
            sources.append(ModuleSource(rel, modules[rel].decode("utf-8"), origin))
        except UnicodeDecodeError as exc:
            failed.append(Outcome(rel, "failed", error=f"the file is not UTF-8 ({exc.reason} at byte {exc.start})"))
    return sources, failed


def _needs(sources: Sequence[ModuleSource]) -> dict[str, set[str]]:
    """Module of the batch → the modules of the batch it needs."""
    imports: dict[str, set[str]] = {}
    for src in sources:
        name = module_name(src.path)
        try:
            imports[name] = imports_of(ast.parse(src.source), name, src.path.endswith("__init__.py"))
        except SyntaxError:
            imports[name] = set()
    return rules.batch_graph(imports)


def _problems(exc: DeployError, root: Path, path: str, batch: Collection[str]) -> str:
    """The refusal as ``file:line:column: message``, with absolute paths for files of the pickup directory."""
    mine = [p for p in exc.problems if p.path == path] or exc.problems
    return "; ".join(f"{root}/{p}" if p.path in batch else str(p) for p in mine)


async def _deploy(
    engine: DeploymentEngine, root: Path, sources: list[ModuleSource], by: str, sequences: list[int]
) -> list[Outcome]:
    graph = _needs(sources)
    batch = {s.path for s in sources}
    outcomes: list[Outcome] = []
    pending = list(sources)
    while pending:
        try:
            result = await engine.deploy(pending, by=by)
        except DeployError as exc:
            paths = {s.path for s in pending}
            named = {p.path for p in exc.problems} & paths
            if not named or (named == paths and len(pending) > 1):
                return outcomes + await _one_by_one(engine, root, pending, graph, by, sequences)
            dropped = rules.casualties(graph, {module_name(p) for p in named})
            for src in pending:
                if src.path in named:
                    outcomes.append(Outcome(src.path, "failed", error=_problems(exc, root, src.path, batch)))
                elif module_name(src.path) in dropped:
                    needed = sorted(graph[module_name(src.path)] & dropped)
                    outcomes.append(Outcome(src.path, "failed", error=f"it needs {', '.join(needed)}, which failed"))
            pending = [s for s in pending if module_name(s.path) not in dropped]
            continue
        sequences.append(result.sequence)
        outcomes.extend(Outcome(m["path"], "deployed", m["version"]) for m in result.modules)
        break
    return outcomes


async def _one_by_one(
    engine: DeploymentEngine,
    root: Path,
    sources: list[ModuleSource],
    graph: dict[str, set[str]],
    by: str,
    sequences: list[int],
) -> list[Outcome]:
    by_name = {module_name(s.path): s for s in sources}
    batch = {s.path for s in sources}
    failed: set[str] = set()
    outcomes: list[Outcome] = []
    for name in load_order(graph, by_name):
        src = by_name[name]
        if graph[name] & failed:
            failed.add(name)
            needed = ", ".join(sorted(graph[name] & failed))
            outcomes.append(Outcome(src.path, "failed", error=f"it needs {needed}, which failed"))
            continue
        try:
            result = await engine.deploy([src], by=by)
        except DeployError as exc:
            failed.add(name)
            outcomes.append(Outcome(src.path, "failed", error=_problems(exc, root, src.path, batch)))
            continue
        sequences.append(result.sequence)
        outcomes.append(Outcome(src.path, "deployed", result.modules[0]["version"]))
    return outcomes


async def _undeploy(
    engine: DeploymentEngine, root: Path, paths: Sequence[str], by: str, sequences: list[int]
) -> list[Outcome]:
    try:
        result = await engine.undeploy(paths, by=by)
    except (DeployError, NotFound):
        pass
    else:
        sequences.append(result.sequence)
        return [Outcome(p, "undeployed") for p in paths]
    # Together they were refused: one at a time, again while any goes (one deleted module may import another).
    outcomes: list[Outcome] = []
    remaining = list(paths)
    errors: dict[str, DeployError] = {}
    progress = True
    while remaining and progress:
        progress = False
        for path in list(remaining):
            try:
                result = await engine.undeploy([path], by=by)
            except NotFound:
                remaining.remove(path)  # undeployed meanwhile by other means
                continue
            except DeployError as exc:
                errors[path] = exc
                continue
            sequences.append(result.sequence)
            outcomes.append(Outcome(path, "undeployed"))
            remaining.remove(path)
            progress = True
    for path in remaining:
        outcomes.append(Outcome(path, "refused", error=_still_imported(engine, path, errors.get(path))))
    return outcomes


def _still_imported(engine: DeploymentEngine, path: str, exc: DeployError | None) -> str:
    record = engine.records.get(path)
    importers: list[str] = []
    if record is not None:
        paths = {r.module: r.path for r in engine.records.values()}
        importers = sorted(paths[m] for m, deps in engine.graph.items() if record.module in deps and m in paths)
    why = f"still imported by {', '.join(importers)}" if importers else "a remaining module still needs it"
    return f"{why}; it keeps running until they stop importing it ({exc})" if exc else why


async def _apply_configs(host: PickupHost, root: Path, configs: Sequence[str]) -> list[Outcome]:
    """Configuration as code (``*.splice.toml``): applied to the cluster like ``splice apply``."""
    if not configs:
        return []
    apply = host.apply_config
    outcomes = []
    for rel in configs:
        try:
            await apply(root / rel)
        except Exception as exc:  # another component's errors, for a user's file: reported, never fatal here
            logger.exception("pickup: applying %s failed", root / rel)
            outcomes.append(Outcome(rel, "failed", error=f"{root / rel}: {type(exc).__name__}: {exc}"))
        else:
            outcomes.append(Outcome(rel, "applied"))
    return outcomes


def _log(root: Path, report: Report, unchanged: int) -> None:
    for o in report.outcomes:
        if o.status == "deployed":
            logger.info("pickup: deployed %s v%s", root / o.path, o.version)
        elif o.status == "undeployed":
            logger.info("pickup: undeployed %s", root / o.path)
        elif o.status == "applied":
            logger.info("pickup: applied configuration %s", root / o.path)
        elif o.status == "refused":
            logger.error("pickup: cannot undeploy %s: %s", root / o.path, o.error)
        elif o.status == "skipped":
            logger.warning("pickup: skipped %s: %s", root / o.path, o.error)
        elif o.error and o.error.startswith(f"{root}/{o.path}"):
            logger.error("pickup: failed: %s", o.error)
        else:
            logger.error("pickup: failed: %s: %s", root / o.path, o.error)
    behind = [f"{s.get('server')} {s.get('status')}" for s in report.servers if s.get("status") != "deployed"]
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to do"
    logger.info(
        "pickup %s: %s batch: %s (%s unchanged), sequence %s, %.1f ms%s",
        root,
        report.trigger,
        summary,
        unchanged,
        report.sequence,
        report.total_ms,
        f"; not confirmed by: {', '.join(behind)}" if behind else "",
    )
