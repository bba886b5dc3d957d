"""File channels: each complete file dropped in a channel's directory invokes its service, on exactly one server.

Every server of the cluster watches every file channel's directory (watchfiles, plus a full scan every
``RESCAN_EVERY`` seconds for missed events, files there at start, and file systems without events such as
NFS). A file counts when its name matches the channel's ``pattern`` and is not hidden, and it is complete once
its size and mtime stayed the same for ``settle`` seconds. A writer that writes under a hidden name (or
elsewhere on the same file system) and renames the file into the directory has its file taken right after
``settle``, never half-written.

Exactly one server takes each file: it renames the file into its own work area, ``.splice/<server>/<name>``;
the rename is atomic, so when several servers try, one wins and the others find the file gone. The winner
reads it (a file over ``max_bytes`` goes straight to ``failed/``) and calls the service with
``Request(payload=<the file's bytes>, channel=<channel name>, path=<file name>)`` and the headers
``x-splice-file`` (the file name) and ``x-splice-file-size`` (its size in bytes). Success moves the file to
``done/<name>``, a failure (``SpliceError``) to ``failed/<name>`` beside ``failed/<name>.error.txt`` (the cid,
the service, the error); a name already taken there gets a timestamp before its extensions. Each server
handles up to ``concurrency`` files of a channel at once and leaves the rest to the others.

Crash safety (at least once): a server that starts handles again the files left in its own work area (it
stopped or died while handling them), and a live server takes over the files in the work area of a server
that is not live (the ODB's liveness): it renames them into its own work area, one winner again, and handles
them. A file is never lost: every step from the directory to ``done/`` or ``failed/`` is a rename or a hard
link, and nothing ever overwrites a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from ..core.context import current_cid, new_cid
from ..core.errors import ServiceNotFound, SpliceError
from ..core.service import Request
from . import _filedrop as drop
from .specs import FileChannel

if TYPE_CHECKING:
    from watchfiles import Change

    from ..core.invoker import Invoker
    from .specs import ChannelOfAnyKind

logger = logging.getLogger(__name__)

RESCAN_EVERY = 2.0
"""Seconds between full scans of a directory (missed events, file systems without events)."""
ORPHANS_EVERY = 2.0
"""Seconds between looks at the other servers' work areas (files a server that is not live left)."""
STOP_WAIT = 8.0
"""At stop: how long the files under way may take before they are left in the work area for the next start."""
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


def _read(path: Path, limit: int) -> tuple[bytes | None, int]:
    """The file's bytes and size; ``None`` for the bytes when it holds more than ``limit``."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            return None, size
        data = file.read(limit + 1)
    return (None if len(data) > limit else data), len(data)


class FileWatcher:
    """One file channel on this server: watches its directory, takes complete files, calls its service."""

    def __init__(self, host: FileHost, spec: FileChannel, busy_by_root: dict[Path, set[str]]) -> None:
        self.host = host
        self.spec = spec
        self.root = drop.resolve(spec.directory, host.settings.directory)
        self.me = host.server.name
        self.work = self.root / drop.WORK / self.me
        self.done = self.root / drop.DONE
        self.failed = self.root / drop.FAILED
        self.busy = busy_by_root.setdefault(self.root, set())
        """Names in this server's work area: being handled, or stuck there (never taken over by a rename)."""
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

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"file channel {self.spec.name}")

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
            logger.exception("file channel %s: watching %s failed", self.spec.name, self.root)
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
                await self._scan()
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
            await anyio.to_thread.run_sync(self._make_directories)
        except OSError as exc:
            logger.error(
                "file channel %s: cannot make %s or its work folders (%s); trying again every %s s",
                self.spec.name,
                self.root,
                exc,
                RESCAN_EVERY,
            )
            return False
        logger.info(
            "file channel %s: watching %s for %s (service %s)",
            self.spec.name,
            self.root,
            self.spec.pattern,
            self.spec.service,
        )
        return True

    def _make_directories(self) -> None:
        for directory in (self.work, self.done, self.failed):
            directory.mkdir(parents=True, exist_ok=True)

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
                logger.warning("file channel %s: watching %s stopped (%s); scanning it", self.spec.name, self.root, exc)
            self._watch_failed = True

    async def _leftovers(self) -> None:
        """Files this server took and did not finish (it stopped or died): handled again, before new ones."""
        names = await anyio.to_thread.run_sync(_files_in, self.work)
        fresh = [name for name in names if name not in self.busy]  # another channel of this directory has it
        self.busy.update(fresh)
        for name in fresh:
            self._queue[(self.work, name)] = None
        if fresh:
            logger.warning(
                "file channel %s: %s files left unfinished in %s are handled again",
                self.spec.name,
                len(fresh),
                self.work,
            )

    async def _scan(self) -> None:
        try:
            found = await anyio.to_thread.run_sync(self._scan_directory)
        except OSError as exc:
            logger.error("file channel %s: cannot read %s: %s", self.spec.name, self.root, exc)
            return
        now = asyncio.get_running_loop().time()
        self._settling.keep_only(set(found))
        for name, seen in found.items():
            self._settling.observe(name, seen, now)

    def _scan_directory(self) -> dict[str, tuple[int, int]]:
        self._make_directories()  # made again if someone removed them
        found: dict[str, tuple[int, int]] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if drop.candidate(entry.name, self.spec.pattern) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        seen = entry.stat(follow_symlinks=False)
                        found[entry.name] = (seen.st_size, seen.st_mtime_ns)
        return found

    async def _look(self, names: set[str]) -> None:
        if not names:
            return
        seen = await anyio.to_thread.run_sync(self._stat, names)
        now = asyncio.get_running_loop().time()
        for name, stat_ in seen.items():
            self._settling.observe(name, stat_, now)

    def _stat(self, names: set[str]) -> dict[str, tuple[int, int] | None]:
        seen: dict[str, tuple[int, int] | None] = {}
        for name in names:
            try:
                found = os.lstat(self.root / name)
            except OSError:
                seen[name] = None
                continue
            seen[name] = (found.st_size, found.st_mtime_ns) if stat.S_ISREG(found.st_mode) else None
        return seen

    async def _orphans(self) -> None:
        """Queue the files of work areas whose server is not live: this server takes them over if it wins."""
        try:
            areas = await anyio.to_thread.run_sync(self._other_work_areas)
        except OSError as exc:
            logger.error("file channel %s: cannot read %s: %s", self.spec.name, self.root / drop.WORK, exc)
            return
        if not areas:
            return
        try:
            live = {peer["name"] for peer in await self.host.cluster.live_peers()}
        except Exception as exc:  # the ODB is unreachable: unsure who is live, so take nothing over
            logger.warning("file channel %s: cannot tell which servers are live (%s)", self.spec.name, exc)
            return
        for server, names in areas.items():
            if server not in live:
                for name in names:
                    if name not in self.busy:
                        self._queue[(self.root / drop.WORK / server, name)] = None

    def _other_work_areas(self) -> dict[str, list[str]]:
        areas: dict[str, list[str]] = {}
        with os.scandir(self.root / drop.WORK) as entries:
            for entry in entries:
                if entry.name != self.me and entry.is_dir(follow_symlinks=False):
                    names = _files_in(Path(entry.path))
                    if names:
                        areas[entry.name] = names
        return areas

    def _take(self) -> None:
        """Start handling files while this channel has room: left or orphaned ones first, then new ones."""
        if not self._service_deployed():
            return
        for source, name in list(self._queue):
            if len(self.tasks) >= self.spec.concurrency:
                return
            del self._queue[(source, name)]
            if source == self.work:  # reserved in ``busy`` by _leftovers
                self._spawn(name, source)
            elif name not in self.busy:
                self.busy.add(name)
                self._spawn(name, source)
        for name in self._settling.complete():
            if len(self.tasks) >= self.spec.concurrency:
                return
            if name not in self.busy:
                self._settling.forget(name)
                self.busy.add(name)
                self._spawn(name, self.root)

    def _service_deployed(self) -> bool:
        """Files wait in the directory while the service is not deployed (rather than all going to failed/)."""
        try:
            self.host.invoker.lookup(self.spec.service)
        except ServiceNotFound:
            if not self._service_missing:
                logger.warning(
                    "file channel %s: no service named '%s' is deployed; files wait in %s until it is",
                    self.spec.name,
                    self.spec.service,
                    self.root,
                )
            self._service_missing = True
            return False
        self._service_missing = False
        return True

    def _spawn(self, name: str, source: Path) -> None:
        task = asyncio.create_task(self._handle(name, source))
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._wake.set()

    async def _handle(self, name: str, source: Path) -> None:
        """Take the file from ``source`` into this server's work area (unless it is there), then handle it."""
        cid = new_cid()
        token = current_cid.set(cid)
        stuck = False
        try:
            if source != self.work:
                try:
                    await anyio.to_thread.run_sync(os.rename, source / name, self.work / name)
                except FileNotFoundError:
                    return  # another server took it first (or it was removed)
                if source != self.root:
                    logger.warning(
                        "file channel %s: %s was left unfinished by server %s, which is not live; handling it here",
                        self.spec.name,
                        name,
                        source.name,
                    )
            stuck = not await self._process(name, cid)
        except OSError as exc:
            logger.error("file channel %s: cannot take %s from %s: %s", self.spec.name, name, source, exc)
        finally:
            if not stuck:
                self.busy.discard(name)
            current_cid.reset(token)

    async def _process(self, name: str, cid: str) -> bool:
        """Call the service with the file, then move it out of the work area; whether it left the work area."""
        limit = self.spec.max_bytes
        try:
            data, size = await anyio.to_thread.run_sync(_read, self.work / name, limit)
        except OSError as exc:
            return await self._finish(name, cid, f"cannot read the file: {exc}")
        if data is None:
            return await self._finish(name, cid, f"the file has {size} bytes, more than max_bytes ({limit})")
        request = Request(data, channel=self.spec.name, path=name, headers={FILE_HEADER: name, SIZE_HEADER: str(size)})
        logger.info("file channel %s: %s (%s bytes) to service %s", self.spec.name, name, size, self.spec.service)
        try:
            await self.host.invoker.call(self.spec.service, data, request=request, cid=cid)
        except SpliceError as exc:
            return await self._finish(name, cid, str(exc))
        return await self._finish(name, cid, None)

    async def _finish(self, name: str, cid: str, error: str | None) -> bool:
        where = self.done if error is None else self.failed
        try:
            final = await anyio.to_thread.run_sync(self._move, name, cid, error)
        except FileNotFoundError:
            logger.warning(
                "file channel %s: %s left this server's work area while it was handled (another server took this "
                "one for dead and took it over): it may be handled twice",
                self.spec.name,
                name,
            )
            return True
        except OSError as exc:
            logger.error(
                "file channel %s: cannot move %s to %s (%s); it stays in %s until this server starts again",
                self.spec.name,
                name,
                where,
                exc,
                self.work,
            )
            return False
        if error is None:
            logger.info("file channel %s: %s done: %s", self.spec.name, name, where / final)
        else:
            logger.error(
                "file channel %s: %s failed (cid %s), moved to %s: %s", self.spec.name, name, cid, where / final, error
            )
        return True

    def _move(self, name: str, cid: str, error: str | None) -> str:
        when = datetime.now(UTC)
        where = self.done if error is None else self.failed
        final = drop.move_without_replacing(self.work / name, where, name, when)
        if error is not None:
            text = (
                f"file: {name}\nchannel: {self.spec.name}\nservice: {self.spec.service}\nserver: {self.me}\n"
                f"cid: {cid}\nfailed at: {when.isoformat()}\nerror: {error}\n"
            )
            try:
                (where / f"{final}{drop.ERROR_SUFFIX}").write_text(text, encoding="utf-8")
            except OSError as exc:
                logger.error("file channel %s: cannot write why %s failed: %s", self.spec.name, where / final, exc)
        return final


def _files_in(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


class FileChannels:
    """Every file channel of the cluster, watched from this server: a ``Background`` part of the runtime.

    After each configuration reload, a channel created starts its watcher, a channel changed restarts it and a
    channel deleted stops it; the files a stopped watcher is handling finish on their own.
    """

    def __init__(self, host: FileHost, stop_wait: float = STOP_WAIT) -> None:
        self.host = host
        self.stop_wait = stop_wait
        self.watchers: dict[str, FileWatcher] = {}
        self._retired: list[FileWatcher] = []
        self._busy: dict[Path, set[str]] = {}
        self._running = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._running = True
        if self.reconcile not in self.host.live.listeners:
            self.host.live.listeners.append(self.reconcile)
        await self.reconcile()

    async def reconcile(self) -> None:
        """Run a watcher for each file channel the configuration holds, and none for the others."""
        async with self._lock:
            if not self._running:
                return
            wanted = {s.name: s for s in self.host.live.of("file") if isinstance(s, FileChannel)}
            for name, watcher in list(self.watchers.items()):
                if wanted.get(name) != watcher.spec:
                    del self.watchers[name]
                    await watcher.close()
                    self._retired.append(watcher)
                    logger.info("file channel %s %s", name, "changed" if name in wanted else "deleted: not watched")
            self._retired = [w for w in self._retired if w.tasks]
            for name, spec in wanted.items():
                if name not in self.watchers:
                    self.watchers[name] = FileWatcher(self.host, spec, self._busy)
                    self.watchers[name].start()

    async def stop(self) -> None:
        """Take no more files; wait up to ``stop_wait`` for those under way, leave the rest in the work area."""
        async with self._lock:
            self._running = False
            with contextlib.suppress(ValueError):
                self.host.live.listeners.remove(self.reconcile)
            watchers = [*self.watchers.values(), *self._retired]
            self.watchers, self._retired = {}, []
        for watcher in watchers:
            await watcher.close()
        tasks = {task for watcher in watchers for task in watcher.tasks}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.stop_wait)
        if pending:
            logger.warning(
                "file channels: %s files still under way after %s s stay in the work area; handled again at the next "
                "start (or by another server)",
                len(pending),
                self.stop_wait,
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)


__all__ = ["FILE_HEADER", "SIZE_HEADER", "FileChannels", "FileHost", "FileWatcher"]
