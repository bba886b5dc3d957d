"""One file channel on one server: watch its directory, take complete files, call the service, move them on.

The loop is thin: ``_filedrop`` holds the rules (settle, names) and the blocking file system work, run here
in worker threads so that a slow disk never stalls the server. ``files`` explains the whole (read it first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from ..core.context import current_cid, new_cid
from ..core.errors import ServiceNotFound, SpliceError
from ..core.service import Request
from . import _filedrop as drop

if TYPE_CHECKING:
    from watchfiles import Change

    from ..core.invoker import Invoker
    from .specs import ChannelOfAnyKind, FileChannel

logger = logging.getLogger(__name__)

RESCAN_EVERY = 2.0
"""Seconds between full scans of a directory (missed events, file systems without events)."""
ORPHANS_EVERY = 2.0
"""Seconds between looks at the other servers' work areas (files a server that is not live left)."""
WATCH_STEP_MS = 50
WATCH_DEBOUNCE_MS = 500
FILE_HEADER = "x-splice-file"
SIZE_HEADER = "x-splice-file-size"


class _Settings(Protocol):
    @property
    def directory(self) -> Path: ...


class _Server(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def member(self) -> str:
        """The process's name in the cluster: its work area is named after it (a worker's own, ``server1.w2``)."""
        ...


class _Live(Protocol):
    @property
    def listeners(self) -> list[Callable[[], Awaitable[None]]]: ...

    def of(self, kind: str) -> list[ChannelOfAnyKind]: ...


class _Cluster(Protocol):
    async def live_peers(self) -> list[dict[str, Any]]: ...


class FileHost(Protocol):
    """What file channels need of their server (``splice.server.runtime.Runtime`` is one)."""

    @property
    def settings(self) -> _Settings: ...

    @property
    def server(self) -> _Server: ...

    @property
    def invoker(self) -> Invoker: ...

    @property
    def live(self) -> _Live: ...

    @property
    def cluster(self) -> _Cluster: ...


class FileWatcher:
    """One file channel on this server: watches its directory, takes complete files, calls its service."""

    def __init__(self, host: FileHost, spec: FileChannel, busy_by_root: dict[Path, set[str]]) -> None:
        self.host = host
        self.spec = spec
        self.name = spec.name
        root = drop.resolve(spec.directory, host.settings.directory)
        self.folders = drop.Folders(root, host.server.member, spec.pattern)
        self.busy = busy_by_root.setdefault(root, set())
        """Names in this server's work area: being handled, or stuck there (so never replaced by a rename)."""
        self.tasks: set[asyncio.Task[None]] = set()
        self._settling = drop.Settling(spec.settle)
        self._queue: dict[tuple[Path, str], None] = {}
        """Files to take before new ones: (the work area holding it, its name)."""
        self._events: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._service_missing = False
        self._watch_failed = False

    @property
    def root(self) -> Path:
        return self.folders.root

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"file channel {self.name}")

    async def close(self) -> None:
        """Take no more files; the calls under way (``tasks``) go on."""
        self._stop.set()
        self._wake.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        while not await self._prepare():
            if await self._sleep(RESCAN_EVERY):
                return
        watch = asyncio.create_task(self._watch())
        try:
            await asyncio.sleep(0)  # let awatch set its watch up before the first scan, so nothing falls between
            await self._leftovers()
            await self._loop(watch)
        except Exception:  # a bug here must not end the channel silently
            logger.exception("file channel %s: watching %s failed", self.name, self.root)
        finally:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _loop(self, watch: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        next_scan = next_orphans = loop.time()
        while True:
            self._wake.clear()
            now = loop.time()
            events, self._events = self._events, set()
            if now >= next_scan:
                await self._look(None)
                next_scan = now + RESCAN_EVERY
                if watch.done() and not self._stop.is_set():
                    watch = asyncio.create_task(self._watch())
            else:
                await self._look(events | set(self._settling.due(now)))
            if now >= next_orphans:
                await self._orphans()
                next_orphans = now + ORPHANS_EVERY
            self._take()
            wait = min(next_scan, next_orphans, self._settling.next_due() or math.inf) - loop.time()
            if await self._sleep(max(wait, 0.01)):
                return

    async def _sleep(self, seconds: float) -> bool:
        """Wait for ``seconds`` or something to do; whether to stop."""
        if not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        return self._stop.is_set()

    async def _prepare(self) -> bool:
        try:
            await anyio.to_thread.run_sync(self.folders.make)
        except OSError as exc:
            logger.error("file channel %s: cannot make %s or its folders (%s); trying again", self.name, self.root, exc)
            return False
        spec = self.spec
        logger.info(
            "file channel %s: watching %s for %s (service %s)", spec.name, self.root, spec.pattern, spec.service
        )
        return True

    def _filter(self, change: Change, path: str) -> bool:
        return drop.candidate(os.path.basename(path), self.spec.pattern)

    async def _watch(self) -> None:
        from watchfiles import awatch

        try:
            async for changes in awatch(
                self.root,
                watch_filter=self._filter,
                recursive=False,
                step=WATCH_STEP_MS,
                debounce=WATCH_DEBOUNCE_MS,
                stop_event=self._stop,
                rust_timeout=1000,
            ):
                self._events.update(os.path.basename(path) for _, path in changes)
                self._wake.set()
        except Exception as exc:  # the directory went away, say: the scans go on, and start the watch again
            if not self._watch_failed:
                logger.warning("file channel %s: watching %s stopped (%s); scanning it", self.name, self.root, exc)
            self._watch_failed = True

    async def _leftovers(self) -> None:
        """Files this server took and did not finish (it stopped or died): handled again, before new ones."""
        names = await anyio.to_thread.run_sync(self.folders.left)
        fresh = [name for name in names if name not in self.busy]  # else another channel of this directory has it
        self.busy.update(fresh)
        for name in fresh:
            self._queue[(self.folders.work, name)] = None
        if fresh:
            logger.warning("file channel %s: %s files left unfinished here are handled again", self.name, len(fresh))

    async def _look(self, names: set[str] | None) -> None:
        """Note the size and mtime of ``names``, or of every file (a full scan) when ``None``."""
        if names is not None and not names:
            return
        try:
            if names is None:
                seen: dict[str, drop.Seen | None] = dict(await anyio.to_thread.run_sync(self.folders.scan))
            else:
                seen = await anyio.to_thread.run_sync(self.folders.stat, names)
        except OSError as exc:
            logger.error("file channel %s: cannot read %s: %s", self.name, self.root, exc)
            return
        now = asyncio.get_running_loop().time()
        if names is None:
            self._settling.keep_only(set(seen))
        for name, found in seen.items():
            self._settling.observe(name, found, now)

    async def _orphans(self) -> None:
        """Queue the files of work areas whose server is not live: this server takes them over if it wins."""
        try:
            areas = await anyio.to_thread.run_sync(self.folders.others)
        except OSError as exc:
            logger.error("file channel %s: cannot read %s: %s", self.name, self.root / drop.WORK, exc)
            return
        if not areas:
            return
        try:
            live = {peer["name"] for peer in await self.host.cluster.live_peers()}
        except Exception as exc:  # the ODB is unreachable: unsure who is live, so take nothing over
            logger.warning("file channel %s: cannot tell which servers are live (%s)", self.name, exc)
            return
        for server, names in areas.items():
            if server not in live:
                for name in names:
                    if name not in self.busy:
                        self._queue[(self.root / drop.WORK / server, name)] = None

    def _take(self) -> None:
        """Start handling files while this channel has room: left or orphaned ones first, then new ones."""
        if not self._service_deployed():
            return
        for source, name in list(self._queue):
            if len(self.tasks) >= self.spec.concurrency:
                return
            del self._queue[(source, name)]
            if source == self.folders.work or name not in self.busy:  # _leftovers reserved its own in ``busy``
                self._spawn(name, source)
        for name in self._settling.complete():
            if len(self.tasks) >= self.spec.concurrency:
                return
            if name not in self.busy:
                self._settling.forget(name)
                self._spawn(name, self.root)

    def _service_deployed(self) -> bool:
        """Files wait in the directory while the service is not deployed (rather than all going to failed/)."""
        try:
            self.host.invoker.lookup(self.spec.service)
        except ServiceNotFound:
            if not self._service_missing:
                logger.warning(
                    "file channel %s: no service named '%s' is deployed; files wait in %s until it is",
                    self.name,
                    self.spec.service,
                    self.root,
                )
            self._service_missing = True
            return False
        self._service_missing = False
        return True

    def _spawn(self, name: str, source: Path) -> None:
        self.busy.add(name)
        task = asyncio.create_task(self._handle(name, source))
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._wake.set()

    async def _handle(self, name: str, source: Path) -> None:
        """Take the file from ``source`` into this server's work area (unless it is there), then handle it."""
        token = current_cid.set(new_cid())
        stuck = False
        try:
            if source != self.folders.work:
                try:
                    await anyio.to_thread.run_sync(os.rename, source / name, self.folders.work / name)
                except FileNotFoundError:
                    return  # another server took it first (or it was removed)
                if source != self.root:
                    logger.warning(
                        "file channel %s: %s was left unfinished by server %s, which is not live; handling it here",
                        self.name,
                        name,
                        source.name,
                    )
            stuck = not await self._process(name)
        except OSError as exc:
            logger.error("file channel %s: cannot take %s from %s: %s", self.name, name, source, exc)
        finally:
            if not stuck:
                self.busy.discard(name)
            current_cid.reset(token)

    async def _process(self, name: str) -> bool:
        """Call the service with the file, then move it out of the work area; whether it left the work area."""
        limit = self.spec.max_bytes
        try:
            data, size = await anyio.to_thread.run_sync(self.folders.read, name, limit)
        except OSError as exc:
            return await self._finish(name, f"cannot read the file: {exc}")
        if data is None:
            return await self._finish(name, f"the file has {size} bytes, more than max_bytes ({limit})")
        request = Request(data, channel=self.name, path=name, headers={FILE_HEADER: name, SIZE_HEADER: str(size)})
        logger.info("file channel %s: %s (%s bytes) to service %s", self.name, name, size, self.spec.service)
        try:
            await self.host.invoker.call(self.spec.service, data, request=request, cid=current_cid.get())
        except SpliceError as exc:
            return await self._finish(name, str(exc))
        return await self._finish(name, None)

    async def _finish(self, name: str, error: str | None) -> bool:
        """Move the file to ``done/`` (``error`` is ``None``) or ``failed/``; whether it left the work area."""
        when = datetime.now(UTC)
        cid = current_cid.get()
        try:
            final = await anyio.to_thread.run_sync(self.folders.finish, name, error is not None, when)
        except FileNotFoundError:
            logger.warning(
                "file channel %s: %s left this server's work area while it was handled (another server took this "
                "one for dead and took it over): it may be handled twice",
                self.name,
                name,
            )
            return True
        except OSError as exc:
            logger.error("file channel %s: cannot move %s out of %s (%s)", self.name, name, self.folders.work, exc)
            return False
        if error is None:
            logger.info("file channel %s: %s done: %s", self.name, name, self.folders.done / final)
            return True
        logger.error("file channel %s: %s failed (cid %s): %s", self.name, name, cid, error)
        why = (
            f"file: {name}\nchannel: {self.name}\nservice: {self.spec.service}\nserver: {self.folders.server}\n"
            f"cid: {cid}\nfailed at: {when.isoformat()}\nerror: {error}\n"
        )
        try:
            await anyio.to_thread.run_sync(self.folders.explain, final, why)
        except OSError as exc:
            logger.error("file channel %s: cannot write why %s failed: %s", self.name, self.folders.failed / final, exc)
        return True
