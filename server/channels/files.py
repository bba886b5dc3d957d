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
from pathlib import Path

from ._filewatch import FILE_HEADER, SIZE_HEADER, FileHost, FileWatcher
from .specs import FileChannel

logger = logging.getLogger(__name__)

STOP_WAIT = 8.0
"""At stop: how long the files under way may take before they are left in the work area for the next start."""


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
