"""The pickup directory: a file saved, copied or pulled into a watched directory is deployed cluster-wide.

Every server may watch the configured directories, but exactly one acts on a given directory: the one
holding its lease in the ODB (``pickup:<directory>``, renewed every second, lost after a few seconds
without renewal). A server that takes the lease, at start or when the holder died, first reconciles the
directory with the ODB (changes made while nobody watched are deployed, deleted files undeployed), then
applies each batch of changes (``_pickup_batch``) and tells the cluster.

Batches: watchfiles yields once ``WATCH_STEP_MS`` pass without a change, so a save is deployed in a few
milliseconds. A ``git pull`` or ``git checkout`` writes its files while holding ``.git/index.lock``, so
while that lock is there the batch keeps growing; it is applied once git is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.context import current_cid, new_cid
from . import _pickup_rules as rules
from ._pickup_batch import PickupHost, Report, apply_batch

if TYPE_CHECKING:
    from watchfiles import Change

logger = logging.getLogger(__name__)

LEASE_TTL = 5.0
"""Seconds a lease lasts without renewal: how soon another server takes over from one that died."""
RENEW_EVERY = 1.0
WATCH_STEP_MS = 5
"""watchfiles yields a batch once this long passes with no new change (~9 ms from write to batch; 10 gave ~14).
Files written further apart than this may come as two batches, each applied whole; a ``git pull`` or checkout is
one batch whatever its pace (below)."""
WATCH_DEBOUNCE_MS = 2000
"""...and at most this long after the batch's first change, however busy the directory stays."""
GIT_POLL = 0.02
GIT_SETTLE = 0.05
"""After git let go of its index lock: how long to wait for the last changes it made to come in."""
GIT_WAIT_MAX = 60.0


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def git_lock(root: Path) -> Path | None:
    """The index lock of the git work tree holding ``root``, if ``root`` is in one (it need not exist)."""
    for directory in (root, *root.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git / "index.lock"
        if dot_git.is_file():  # a linked work tree or a submodule: "gitdir: <path>"
            with contextlib.suppress(OSError, ValueError):
                text = dot_git.read_text(encoding="utf-8").strip()
                if text.startswith("gitdir:"):
                    return (directory / text[len("gitdir:") :].strip()).resolve() / "index.lock"
            return None
    return None


class PickupDirectory:
    """One watched directory: its lease, its watcher while this server holds the lease, its last batch."""

    def __init__(self, runtime: PickupHost, root: Path, ttl: float, renew: float) -> None:
        self.runtime = runtime
        self.root = root
        self.lease = rules.tag(str(root))
        self.holder = runtime.server.member  # a worker of a server of several holds it as itself (server1.w1)
        self.ttl = ttl
        self.renew = renew
        self.leading = False
        self.last_batch: Report | None = None
        self._queue: asyncio.Queue[set[str]] = asyncio.Queue()
        self._stop_watching = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._odb_failing = False
        self._watched: tuple[int, int] | None = None
        self._root_fd: int | None = None
        """The (device, inode) of the root being watched."""
        self._refused: set[str] = set()
        """Deleted files whose module could not be undeployed yet (still imported): tried with every batch."""

    async def run(self) -> None:
        """Hold the lease while possible, act while holding it; forever (cancel to stop)."""
        while True:
            held = await self._renew()
            if self.leading and (not held or self._ended()):
                why = (
                    "the lease is lost"
                    if not held
                    else "a batch failed, the watcher stopped or the directory was replaced"
                )
                await self._step_down(why)
            if held and not self.leading:
                await self._lead()
            await asyncio.sleep(self.renew)

    async def _renew(self) -> bool:
        try:
            held = await self.runtime.repository.acquire_lease(self.lease, self.holder, self.ttl)
        except Exception as exc:  # the ODB is unreachable or busy: unsure of the lease, so act as if lost
            if not self._odb_failing:
                logger.warning("pickup %s: cannot renew the lease (%s); trying again", self.root, exc)
            self._odb_failing = True
            return False
        self._odb_failing = False
        return held

    def _ended(self) -> bool:
        # A root removed and made again (``rm -rf pickup; git clone ... pickup``) is a new directory that the
        # watcher does not see: that ends this term too, and the next one watches and reconciles the new one.
        replaced = self.leading and _identity(self.root) != self._watched
        return replaced or any(task is not None and task.done() for task in (self._watcher, self._worker))

    async def _lead(self) -> None:
        logger.info("pickup %s: %s holds the lease and acts on this directory", self.root, self.holder)
        self.root.mkdir(parents=True, exist_ok=True)
        # Held open while leading, so that the directory's inode number cannot be reused by a new directory
        # of the same name: the (device, inode) comparison in _ended then always tells a replaced root.
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        held = os.fstat(self._root_fd)
        self._watched = (held.st_dev, held.st_ino)
        self.leading = True
        self._queue = asyncio.Queue()
        self._stop_watching = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch())
        # Let awatch set its watches up before the reconcile reads the directory, so nothing falls between.
        await asyncio.sleep(0)
        self._worker = asyncio.create_task(self._work())

    async def _step_down(self, why: str) -> None:
        if self.leading:
            logger.warning("pickup %s: %s stops acting on this directory: %s", self.root, self.holder, why)
        self.leading = False
        self._stop_watching.set()
        for task in (self._worker, self._watcher):
            if task is not None:
                if task is self._worker:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._watcher = self._worker = None
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    async def close(self) -> None:
        """Stop acting and hand the lease back, so that another server takes over at once."""
        held = self.leading
        await self._step_down("the server stops")
        if held:
            with contextlib.suppress(Exception):
                await self.runtime.repository.release_lease(self.lease, self.holder)

    def _filter(self, change: Change, path: str) -> bool:
        rel = rules.relative(str(self.root), path)
        if rel is None or rules.ignored(rel):
            return False
        # Directories (and paths gone, which may have been directories) matter: a folder moved away.
        return rules.kind(rel) is not None or not Path(path).is_file()

    async def _watch(self) -> None:
        from watchfiles import awatch

        try:
            async for changes in awatch(
                self.root,
                watch_filter=self._filter,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                stop_event=self._stop_watching,
                rust_timeout=1000,
            ):
                self._queue.put_nowait({path for _, path in changes})
        except Exception:
            logger.exception("pickup %s: watching failed; starting again", self.root)

    async def _work(self) -> None:
        """Reconcile, then apply batches; a batch that fails ends this, and ``run`` starts over with a reconcile."""
        if not await self._apply(None, "start"):
            return
        while True:
            changed = await self._gather(await self._queue.get())
            scope = {rel for path in changed if (rel := rules.relative(str(self.root), path)) is not None}
            if scope and not await self._apply(scope, "change"):
                return

    async def _gather(self, changed: set[str]) -> set[str]:
        """More changes while git is busy in the directory's work tree (a pull, a checkout): one batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIT_WAIT_MAX
        waited = False
        while True:
            while not self._queue.empty():
                changed |= self._queue.get_nowait()
            lock = git_lock(self.root)
            if lock is not None and lock.exists() and loop.time() < deadline:
                waited = True
                with contextlib.suppress(TimeoutError):
                    changed |= await asyncio.wait_for(self._queue.get(), GIT_POLL)
                continue
            if waited:
                waited = False
                await asyncio.sleep(GIT_SETTLE)
                continue
            return changed

    async def _apply(self, scope: set[str] | None, trigger: str) -> bool:
        token = current_cid.set(new_cid())
        if scope is not None:
            scope |= self._refused
        try:
            report = await apply_batch(self.runtime, self.root, scope, trigger, by=f"pickup@{self.holder}")
        except Exception:  # the ODB went away mid-batch, say: a reconcile catches up once it is back
            logger.exception("pickup %s: the %s batch failed; reconciling again", self.root, trigger)
            return False
        finally:
            current_cid.reset(token)
        self._refused = {o.path for o in report.outcomes if o.status == "refused"}
        if report.outcomes or trigger == "start":
            self.last_batch = report
        return True

    def status(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "lease": self.lease,
            "acting": self.leading,
            "last_batch": self.last_batch.as_dict() if self.last_batch else None,
        }


class Pickup:
    """Every pickup directory of the cluster, as seen from this server."""

    def __init__(self, runtime: PickupHost, ttl: float = LEASE_TTL, renew: float = RENEW_EVERY) -> None:
        roots = dict.fromkeys(runtime.settings.pickup_dirs)
        self.dirs = [PickupDirectory(runtime, root, ttl, renew) for root in roots]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(d.run()) for d in self.dirs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for directory in self.dirs:
            await directory.close()

    def status(self) -> list[dict[str, Any]]:
        return [d.status() for d in self.dirs]
