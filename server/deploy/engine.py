"""The deployment engine: validate, persist, load, swap (DESIGN.md steps 2 to 4 and 6).

All or nothing: every module of a call is checked (size, encoding, name, ``compile()``, an import in a
throw-away process, the services it defines, name conflicts) before anything is written. Only then is
the deployment recorded in the ODB and loaded from real files; if loading fails the transaction is
rolled back and the previous modules are put back, so the previous version keeps serving.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio.to_thread

from ..core.errors import Conflict, DeployError, NotFound, SourceProblem
from ..core.naming import check_module_path, module_name
from ..core.store import ServiceInfo, ServiceStore, describe, find_services
from .change import carried, records_of, sha256
from .isolate import Isolation, IsolationUnavailable
from .loader import UserModules, forget, import_all, is_foreign, restore
from .modules import check_path_length, dependents, imports_of, load_order, shadowed
from .reclaim import Reclaimer
from .records import (
    DeploymentRepository,
    DeployResult,
    Limits,
    ModuleRecord,
    ModuleSource,
    SyncResult,
    UndeployResult,
)
from .tree import clear_dir, prune, read_file, write_whole

logger = logging.getLogger(__name__)
_ATTEMPTS = 3
_LOCK_BUDGET = 0.25
"""Seconds a deployment's open transaction may wait for its throw-away import."""


class _SlowIsolation(Exception):
    pass


async def _within(isolation: asyncio.Future[Any], seconds: float) -> Any:
    """The isolation's result if it comes within ``seconds`` (after which it keeps running), else ``_SlowIsolation``."""
    if not isolation.done():
        await asyncio.wait([isolation], timeout=seconds)
        if not isolation.done():
            raise _SlowIsolation
    return isolation.result()


def class_line(tree: ast.Module, class_name: str | None) -> int | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node.lineno
    return None


class DeploymentEngine:
    """Deploys and undeploys modules on this server; one deployment at a time."""

    def __init__(
        self,
        store: ServiceStore,
        repository: DeploymentRepository,
        deployed_dir: Path,
        isolation: Isolation,
        limits: Limits,
    ) -> None:
        self.store = store
        self.repository = repository
        self.deployed_dir = deployed_dir
        self.isolation = isolation
        self.limits = limits
        self.finder = UserModules(deployed_dir)
        self.graph: dict[str, set[str]] = {}
        self.records: dict[str, ModuleRecord] = {}
        self.load_failures: list[SourceProblem] = []
        self.applied = 0
        """The newest deployment sequence this server has applied; everything up to it is loaded."""
        self.last_change: dict[str, Any] | None = None
        """The newest deployment made here as a notice carries it (``DeployResult.change``)."""
        self.in_step = True
        """Whether this server holds what the ODB held at ``applied`` (not after a sync that failed to load): only
        then may a notice's change (``take_change``) stand in for reading the ODB."""
        self.reclaimer = Reclaimer()
        """Collects the module versions a deployment replaced or removed, once nothing runs on them."""
        self._lock = asyncio.Lock()

    # -- start-up ------------------------------------------------------------------------------

    async def load_all(self) -> int:
        """Load every module the ODB holds (the ODB is the truth); returns how many loaded."""
        self.finder.install()
        sequence, records = await self.repository.state()
        async with self._lock:
            self.applied = sequence
            clear_dir(self.deployed_dir)
            self.records = {r.path: r for r in records}
            for record in records:
                write_whole(self.deployed_dir / record.path, record.source)
                self.finder.add(record.module, record.path)
                self.graph[record.module] = _imports(record.source, record.module, record.path)
            order = load_order(self.graph, self.finder.files)
            infos = await anyio.to_thread.run_sync(self._load_tolerant, order)
            self.store.swap(set(self.finder.files), infos)
        return len(records)

    async def sync(self) -> SyncResult:
        """Bring this server to what the ODB holds: load changed modules, drop removed ones.

        State-based rather than event-based, so it does not matter which notices were missed: a server
        that was down, partitioned or slow converges on the ODB's truth whenever it syncs.
        """
        async with self._lock:
            return await self._sync_locked()

    async def _sync_locked(self, force: bool = False) -> SyncResult:
        started = time.perf_counter()
        mine = {p: (r.version, r.sha256) for p, r in self.records.items()}
        sequence, heads, config, stale = await self.repository.changes(-1 if force else self.applied, mine)
        if sequence <= self.applied and not force:
            return SyncResult(self.applied, {}, [], None, timings={"read_ms": _ms(started, time.perf_counter())})
        changed = {r.path: r for r in stale}
        removed = set(self.records) - set(heads)
        read = time.perf_counter()
        error = None
        if changed or removed:
            error = await self._apply_state(changed, removed)
        self.applied = max(self.applied, sequence)
        self.in_step = error is None
        timings = {"read_ms": _ms(started, read), "load_ms": _ms(read, time.perf_counter())}
        loaded = {p: r.version for p, r in changed.items()}
        return SyncResult(sequence, loaded, sorted(removed), error, config, timings)

    async def _apply_state(self, changed: dict[str, ModuleRecord], removed: set[str]) -> str | None:
        removed_names = {self.records[p].module for p in removed}
        graph = {k: v for k, v in self.graph.items() if k not in removed_names}
        for record in changed.values():
            graph[record.module] = _imports(record.source, record.module, record.path)
        names = {r.module for r in changed.values()}
        known = set(self.finder.files) | names
        reload = (dependents(self.graph, removed_names) | dependents(graph, names)) & known - removed_names
        order = load_order(graph, names | reload)
        try:
            await self._apply(changed, removed=removed, order=order, graph=graph)
        except DeployError as exc:
            logger.error("cannot apply the cluster's deployments here: %s", exc)
            self.load_failures.append(SourceProblem(next(iter(changed), ""), str(exc), kind="sync"))
            return str(exc)
        return None

    async def take_change(self, change: dict[str, Any]) -> SyncResult | None:
        """Apply a deployment as its notice carried it (``DeployResult.change``), without reading the ODB; ``None``
        when it does not apply here as it is (this server is not exactly one step behind it, or out of step with
        the ODB, or the change is malformed): the caller syncs with the ODB instead.

        The origin sends it only once the deployment is committed, so the ODB holds the same."""
        started = time.perf_counter()
        async with self._lock:
            records = records_of(change)
            if records is None or change.get("after") != self.applied or not self.in_step:
                return None
            sequence = self.applied + 1
            if any(r.sequence != sequence for r in records.values()):
                return None
            error = await self._apply_state(records, set())
            self.applied = sequence
            self.in_step = error is None
        timings = {"read_ms": 0.0, "load_ms": _ms(started, time.perf_counter())}
        return SyncResult(sequence, {p: r.version for p, r in records.items()}, [], error, timings=timings)

    def _change(self, sequence: int, records: dict[str, ModuleRecord]) -> dict[str, Any] | None:
        """What a notice carries of deployment ``sequence`` (``take_change``), if it is the next after ``applied``
        (nothing from elsewhere came in between) and small enough."""
        return carried(sequence, records) if self.applied == sequence - 1 else None

    def _advance(self, sequence: int) -> None:
        """After a deployment made here: move ``applied`` on only if nothing from elsewhere came in between."""
        if self.applied == sequence - 1:
            self.applied = sequence

    def close(self) -> None:
        """Stop answering for deployed module names in this process (servers that stop, tests)."""
        self.finder.uninstall()
        self.reclaimer.close()
        forget([*self.finder.files, *self.finder.packages()])

    def _load_tolerant(self, order: list[str]) -> list[ServiceInfo]:
        infos: list[ServiceInfo] = []
        by_module = {r.module: r for r in self.records.values()}
        for name in order:
            record = by_module[name]
            try:
                module = import_all([name])[name]
                infos.extend(self._describe_all(record, vars(module)))
            except Exception as exc:
                logger.exception("cannot load %s at start", record.path)
                self.load_failures.append(SourceProblem(record.path, f"{type(exc).__name__}: {exc}"))
        return infos

    def _describe_all(self, record: ModuleRecord, namespace: dict[str, Any]) -> list[ServiceInfo]:
        classes, _ = find_services(record.module, namespace)
        return [describe(cls, record.module, record.path, record.version, namespace) for cls in classes]

    # -- deploy ----------------------------------------------------------------------------------

    async def deploy(self, sources: Sequence[ModuleSource], by: str = "") -> DeployResult:
        """Deploy ``sources`` together, all or nothing; raises ``DeployError`` naming every problem."""
        started = time.perf_counter()
        async with self._lock:
            names, trees = self._check_sources(sources)
            graph = dict(self.graph)
            for src in sources:
                graph[names[src.path]] = imports_of(trees[src.path], names[src.path], src.path.endswith("__init__.py"))
            batch = {names[s.path] for s in sources}
            reload = dependents(graph, batch) & set(self.finder.files)
            order = load_order(graph, batch | reload)
            files = {**self.finder.files, **{names[s.path]: s.path for s in sources}}
            overlay = {names[s.path]: s.source for s in sources}
            checked = time.perf_counter()
            # A module without services is a library when a package or another module needs it (helpers, __init__).
            needed = {dep for deps in graph.values() for dep in deps}
            libraries = [n for n in sorted(batch) if n in needed or files[n].endswith("__init__.py")]
            # The throw-away import and the ODB writes run side by side; the transaction commits only once
            # the import passed (and is rolled back if it did not). The isolation job is always awaited to its
            # end, never cancelled: its worker answers one line per job.
            isolation = asyncio.ensure_future(self._isolated(files, overlay, order, sorted(batch), trees, libraries))
            rows = [(s, names[s.path], sha256(s.source)) for s in sources]
            unchanged = [s for s, _, digest in rows if (r := self.records.get(s.path)) and r.sha256 == digest]
            isolated = recorded = checked
            try:
                attempt = 0
                while attempt < _ATTEMPTS:
                    attempt += 1
                    try:
                        async with self.repository.transaction() as tx:
                            sequence, persisted = await tx.record_deploy(rows, by)
                            recorded = time.perf_counter()
                            found = await _within(isolation, _LOCK_BUDGET)
                            isolated = time.perf_counter()
                            self._check_conflicts(found, batch, names)
                            await tx.record_services({s.path: found[names[s.path]] for s in sources})
                            new_records = {
                                s.path: ModuleRecord(
                                    s.path,
                                    names[s.path],
                                    persisted[s.path],
                                    s.source,
                                    rows[i][2],
                                    sequence,
                                    by,
                                    "",
                                    s.origin,
                                )
                                for i, s in enumerate(sources)
                            }
                            await self._apply(new_records, removed=set(), order=order, graph=graph)
                        break
                    except _SlowIsolation:
                        # A slow import must not hold the ODB's locks (on SQLite, every server's): let it finish
                        # outside the transaction, then write again.
                        await asyncio.wait([isolation])
                        attempt -= 1
                    except Conflict as exc:
                        # Another server committed the same modules first: back to the ODB's truth, then again.
                        await self._sync_locked(force=True)
                        if attempt == _ATTEMPTS:
                            problems = [SourceProblem(s.path, str(exc), kind="conflict") for s in sources]
                            raise DeployError(problems) from exc
            finally:
                if not isolation.done():
                    await asyncio.wait([isolation])
                if not isolation.cancelled():
                    isolation.exception()  # retrieved: a failure that lost to another error is not "never retrieved"
            change = self.last_change = self._change(sequence, new_records) if self.in_step else None
            self._advance(sequence)
            done = time.perf_counter()
        timings = {
            "validate_ms": _ms(started, checked),
            "isolate_ms": _ms(checked, isolated),  # the throw-away import; the ODB writes overlap it
            "persist_ms": _ms(checked, recorded),
            "load_ms": _ms(isolated, done),  # services recorded, modules loaded, commit
            "total_ms": _ms(started, done),
        }
        modules = [
            {
                "path": s.path,
                "module": names[s.path],
                "version": persisted[s.path],
                "unchanged": s in unchanged,
                "services": [svc["name"] for svc in found[names[s.path]]],
            }
            for s in sources
        ]
        logger.info(
            "deployed %s as sequence %s in %.1f ms", ", ".join(s.path for s in sources), sequence, timings["total_ms"]
        )
        return DeployResult(sequence, modules, timings, reloaded=sorted(reload), change=change)

    def _check_sources(self, sources: Sequence[ModuleSource]) -> tuple[dict[str, str], dict[str, ast.Module]]:
        problems: list[SourceProblem] = []
        names: dict[str, str] = {}
        trees: dict[str, ast.Module] = {}
        if not sources:
            raise DeployError([SourceProblem("", "nothing to deploy: no modules given")])
        seen: dict[str, str] = {}
        for src in sources:
            problem = self._check_one(src, seen)
            if problem:
                problems.append(problem)
                continue
            names[src.path] = seen[src.path] = module_name(src.path)
            try:
                trees[src.path] = ast.parse(src.source, filename=src.path)
                compile(trees[src.path], src.path, "exec", dont_inherit=True)
            except SyntaxError as exc:
                column = exc.offset
                message = f"{type(exc).__name__}: {exc.msg}"
                problems.append(SourceProblem(src.path, message, exc.lineno, column, kind="syntax"))
        if problems:
            raise DeployError(problems)
        return names, trees

    def _check_one(self, src: ModuleSource, seen: dict[str, str]) -> SourceProblem | None:
        path = src.path
        bad = check_path_length(path) or check_module_path(path)
        if bad:
            return SourceProblem(path, bad, kind="path")
        size = len(src.source.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_module_bytes:
            return SourceProblem(
                path, f"module is {size} bytes, the limit is {self.limits.max_module_bytes}", kind="size"
            )
        try:
            src.source.encode("utf-8")
        except UnicodeEncodeError as exc:
            return SourceProblem(path, f"source is not valid UTF-8: {exc.reason}", kind="encoding")
        if "\x00" in src.source:
            line = src.source.count("\n", 0, src.source.index("\x00")) + 1
            return SourceProblem(path, "source contains a NUL character", line, kind="encoding")
        name = module_name(path)
        for other_path, other in seen.items():
            if other == name:
                return SourceProblem(
                    path, f"module {name} is given twice in this call (also as {other_path})", kind="path"
                )
        clash = self._layout_clash(path, name)
        if clash:
            return SourceProblem(path, clash, kind="path")
        taken = shadowed(name, lambda top: is_foreign(top, self.finder))
        if taken:
            return SourceProblem(
                path, f"module {name} would shadow the installed module '{taken}'; rename it", kind="path"
            )
        return None

    def _layout_clash(self, path: str, name: str) -> str | None:
        """Why ``path`` cannot sit beside the deployed modules (one name from two files, a module used as a package)."""
        current = self.finder.files.get(name)
        if current is not None and current != path:
            return f"module {name} is already deployed from {current}; undeploy that file first"
        if name in self.finder.packages() and not path.endswith("__init__.py"):
            return f"{name} is a package of deployed modules, so it cannot also be the module {path}"
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            owner = self.finder.files.get(parent)
            if owner is not None and not owner.endswith("__init__.py"):
                return f"{parent} is the deployed module {owner}, so it cannot also be a package holding {path}"
        return None

    async def _isolated(
        self,
        files: dict[str, str],
        overlay: dict[str, str],
        order: list[str],
        describe_names: list[str],
        trees: dict[str, ast.Module],
        libraries: Sequence[str] = (),
    ) -> dict[str, list[dict[str, Any]]]:
        job = {
            "root": str(self.deployed_dir),
            "files": files,
            "overlay": overlay,
            "check": order,
            "describe": describe_names,
            "libraries": list(libraries),
            "timeout": self.limits.import_timeout,
        }
        paths = [files[n] for n in describe_names] or [files[n] for n in order]
        try:
            result = await self.isolation.check(job)
        except IsolationUnavailable:
            message = "importing killed the isolation process twice (does the module kill its parent process?)"
            raise DeployError([SourceProblem(p, message, kind="import") for p in paths]) from None
        if result.get("timeout"):
            message = f"importing did not finish within {self.limits.import_timeout:g} s (a loop at module level?)"
            raise DeployError([SourceProblem(p, message, kind="timeout") for p in paths])
        if "exited" in result:
            message = f"importing ended the process (exit status {result['exited']})"
            raise DeployError([SourceProblem(p, message, kind="import") for p in paths])
        problems: list[SourceProblem] = []
        for raw in result["problems"]:
            tree = trees.get(raw["path"])
            line = raw.get("line") or (class_line(tree, raw.get("class")) if tree else None)
            problem = SourceProblem(
                raw["path"], raw["message"], line, raw.get("column"), "import", raw.get("traceback")
            )
            if not any((p.path, p.line, p.message) == (problem.path, problem.line, problem.message) for p in problems):
                problems.append(problem)
        if problems:
            raise DeployError(problems)
        found: dict[str, list[dict[str, Any]]] = {}
        for name, module in result["modules"].items():
            found[name] = module["services"]
        return found

    def _check_conflicts(self, found: dict[str, list[dict[str, Any]]], batch: set[str], names: dict[str, str]) -> None:
        problems = []
        path_of = {v: k for k, v in names.items()}
        owner: dict[str, str] = {}
        for module in sorted(batch):
            for svc in found.get(module, []):
                name = svc["name"]
                if name in owner:
                    other = owner[name]
                    problems.append(SourceProblem(path_of[module], f"service name '{name}' is also defined in {other}"))
                elif (current := self.store.taken_by(name, batch)) is not None:
                    problems.append(
                        SourceProblem(path_of[module], f"service name '{name}' is already defined in {current.path}")
                    )
                owner[name] = path_of[module]
        if problems:
            raise DeployError(problems)

    async def _apply(
        self, records: dict[str, ModuleRecord], removed: set[str], order: list[str], graph: dict[str, set[str]]
    ) -> None:
        """Write files, load ``order`` afresh, swap the store; on any failure put everything back (files and
        directories this call made included). The replaced modules go to the reclaimer."""
        old_files = dict(self.finder.files)
        old_sources = {p: read_file(self.deployed_dir / p) for p in [*records, *removed]}
        removed_names = {self.records[p].module for p in removed}
        made: list[Path] = []
        saved: dict[str, ModuleType] = {}
        merged = {**self.records, **records}
        try:
            for path, record in records.items():
                made += write_whole(self.deployed_dir / path, record.source)
                self.finder.add(record.module, path)
            for name in removed_names:
                self.finder.discard(name)
            saved = forget([*order, *removed_names])
            modules = await anyio.to_thread.run_sync(import_all, order)
            by_module = {r.module: r for r in merged.values()}
            infos = [info for name in order for info in self._describe_all(by_module[name], vars(modules[name]))]
        except BaseException as exc:
            self._undo(saved, order, old_files, old_sources, made)
            if isinstance(exc, OSError):
                problem = f"cannot write the module under {self.deployed_dir}: {exc.strerror or exc}"
                raise DeployError([SourceProblem(next(iter(records), ""), problem, kind="disk")]) from exc
            if isinstance(exc, Exception):
                raise DeployError(
                    [SourceProblem(next(iter(records), ""), f"loading failed: {exc!r}", kind="load")]
                ) from exc
            raise
        for path in removed:
            (self.deployed_dir / path).unlink(missing_ok=True)
            prune(self.deployed_dir, (self.deployed_dir / path).parent)
        saved |= forget(_packages(old_files) - self.finder.packages() - set(self.finder.files))
        self.store.swap(set(order) | removed_names, infos)
        self.graph = {k: v for k, v in graph.items() if k not in removed_names}
        self.records = {p: r for p, r in merged.items() if p not in removed}
        del modules, infos  # nothing of this frame may keep an old version alive while the reclaimer waits
        self.reclaimer.retire(saved, [str(self.deployed_dir / p) for p in [*records, *removed]])

    def _undo(
        self,
        saved: dict[str, ModuleType],
        order: list[str],
        old_files: dict[str, str],
        old_sources: dict[str, str | None],
        made: list[Path],
    ) -> None:
        """Put back the modules, files and directories an ``_apply`` that failed had changed."""
        failed = restore(saved, order)
        self.finder.files = old_files
        for path, source in old_sources.items():
            target = self.deployed_dir / path
            if source is None:
                target.unlink(missing_ok=True)
            else:
                with contextlib.suppress(OSError):  # the disk refused the new file; the old one is still there
                    write_whole(target, source)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.reclaimer.retire(failed)

    # -- undeploy --------------------------------------------------------------------------------

    async def undeploy(self, paths: Sequence[str], by: str = "") -> UndeployResult:
        """Remove modules and their services; refused if a remaining module still imports one of them."""
        started = time.perf_counter()
        async with self._lock:
            missing = [p for p in paths if p not in self.records]
            if missing:
                raise NotFound(f"not deployed: {', '.join(missing)}")
            removed_names = {self.records[p].module for p in paths}
            graph = {k: v for k, v in self.graph.items() if k not in removed_names}
            reload = dependents(self.graph, removed_names) - removed_names
            order = load_order(graph, reload)
            if order:
                files = {k: v for k, v in self.finder.files.items() if k not in removed_names}
                await self._isolated(files, {}, order, [], {})
            services = [info.name for p in paths for info in self.store.by_module(self.records[p].module)]
            async with self.repository.transaction() as tx:
                sequence = await tx.record_undeploy(list(paths), by)
                await self._apply({}, removed=set(paths), order=order, graph=graph)
            self._advance(sequence)
        logger.info("undeployed %s as sequence %s", ", ".join(paths), sequence)
        return UndeployResult(sequence, list(paths), services, _ms(started, time.perf_counter()))


def _packages(files: dict[str, str]) -> frozenset[str]:
    return UserModules(Path(), files).packages()


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 3)


def _imports(source: str, module: str, path: str) -> set[str]:
    try:
        return imports_of(ast.parse(source), module, path.endswith("__init__.py"))
    except SyntaxError:
        return set()
