"""The rules of a file channel's directory: which files count, when a file is complete, where it goes after.

A file channel's directory holds the files dropped there, ``done/`` and ``failed/`` for the files handled, and
``.splice/<server>/``, each server's work area: the files it took and is handling. Every move between these
places is one rename or one hard link (the same file system), so a file is never lost; a move into ``done/``
or ``failed/`` never replaces a file already there.

The settle rule and the names are pure (``Settling``, ``candidate``, ``unique_names``); ``Folders`` does the
blocking file system work of one directory for one server (run in a worker thread), and
``move_without_replacing`` is the one move that must not overwrite.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path

WORK = ".splice"
"""The hidden folder of the servers' work areas: ``.splice/<server>/<file name>``."""
DONE = "done"
FAILED = "failed"
ERROR_SUFFIX = ".error.txt"


def resolve(directory: str, base: Path) -> Path:
    """A channel's directory: absolute, or relative to the cluster directory ``base``."""
    path = Path(directory).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def candidate(name: str, pattern: str) -> bool:
    """Whether a file named ``name``, directly in the directory, is one to take: not hidden, matching ``pattern``.

    ``done`` and ``failed`` are folders, so they never reach here as files; a hidden name is how a writer keeps a
    file out of sight until it is complete (``.invoice.csv.part``, then a rename to ``invoice.csv``)."""
    return bool(name) and not name.startswith(".") and fnmatchcase(name, pattern)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float
    """When this size and mtime were first seen (a monotonic clock)."""
    complete: bool = False


class Settling:
    """Which files have kept the same size and mtime for ``settle`` seconds, in the order they were first seen.

    Fed with what a scan or a file event saw (``observe``); a file is complete once it was seen unchanged twice,
    ``settle`` seconds or more apart (at once when ``settle`` is 0).
    """

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[str, _Seen] = {}

    def observe(self, name: str, stat: tuple[int, int] | None, now: float) -> None:
        """``stat`` is ``(size, mtime_ns)``, or ``None`` when the file is gone (taken, removed, not a file)."""
        if stat is None:
            self._seen.pop(name, None)
            return
        seen = self._seen.get(name)
        if seen is None or (seen.size, seen.mtime_ns) != stat:
            self._seen[name] = _Seen(*stat, now, complete=self.settle <= 0)
        elif now - seen.since >= self.settle:
            seen.complete = True

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)

    def keep_only(self, names: set[str]) -> None:
        """After a full scan: forget what is no longer there."""
        for name in [n for n in self._seen if n not in names]:
            del self._seen[name]

    def complete(self) -> list[str]:
        """The complete files, the earliest seen first."""
        return [name for name, seen in self._seen.items() if seen.complete]

    def due(self, now: float) -> list[str]:
        """Files not complete yet that have been unchanged long enough to be looked at again."""
        return [n for n, s in self._seen.items() if not s.complete and now - s.since >= self.settle]

    def next_due(self) -> float | None:
        """When the next file not complete yet is due to be looked at again (``None``: none waits)."""
        times = [s.since + self.settle for s in self._seen.values() if not s.complete]
        return min(times) if times else None

    def __len__(self) -> int:
        return len(self._seen)


def unique_names(name: str, when: datetime) -> Iterator[str]:
    """``name``, then ``name`` with a timestamp before its extensions (``invoice-20261203-101112-123456.csv``),
    then with a counter as well: names for a file that must not replace one of the same name."""
    yield name
    stem, dot, extensions = name.partition(".")
    stamp = when.strftime("%Y%m%d-%H%M%S-%f")
    yield f"{stem}-{stamp}{dot}{extensions}"
    for n in range(2, 10_000):
        yield f"{stem}-{stamp}-{n}{dot}{extensions}"


def move_without_replacing(source: Path, directory: Path, name: str, when: datetime) -> str:
    """Move ``source`` into ``directory`` as ``name``, or a timestamped name if ``name`` is taken; answers the name.

    A hard link then an unlink, so that a file of that name already there (put by another server at the same
    moment) is never replaced; where the file system has no hard links, a rename after a check. Raises
    ``FileNotFoundError`` if ``source`` is gone.
    """
    for target in unique_names(name, when):
        try:
            os.link(source, directory / target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(directory / target):
                continue
            os.rename(source, directory / target)
            return target
        with contextlib.suppress(FileNotFoundError):  # taken over meanwhile: the other taker handles it again
            os.unlink(source)
        return target
    raise FileExistsError(f"{directory}: no free name for {name}")


Seen = tuple[int, int]
"""A file's size and mtime (nanoseconds)."""


@dataclass(frozen=True)
class Folders:
    """A channel's directory as one server sees it: the files to take, its work area, ``done/`` and ``failed/``."""

    root: Path
    server: str
    pattern: str

    @property
    def work(self) -> Path:
        return self.root / WORK / self.server

    @property
    def done(self) -> Path:
        return self.root / DONE

    @property
    def failed(self) -> Path:
        return self.root / FAILED

    def make(self) -> None:
        for directory in (self.work, self.done, self.failed):
            directory.mkdir(parents=True, exist_ok=True)

    def scan(self) -> dict[str, Seen]:
        """Every file to take, with its size and mtime (the folders are made again if someone removed them)."""
        self.make()
        found: dict[str, Seen] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if candidate(entry.name, self.pattern) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        seen = entry.stat(follow_symlinks=False)
                        found[entry.name] = (seen.st_size, seen.st_mtime_ns)
        return found

    def stat(self, names: Iterable[str]) -> dict[str, Seen | None]:
        """Size and mtime of each named file, ``None`` when it is gone or not a regular file."""
        seen: dict[str, Seen | None] = {}
        for name in names:
            try:
                found = os.lstat(self.root / name)
            except OSError:
                seen[name] = None
                continue
            seen[name] = (found.st_size, found.st_mtime_ns) if stat.S_ISREG(found.st_mode) else None
        return seen

    def left(self) -> list[str]:
        """The files in this server's work area."""
        return _files_in(self.work)

    def others(self) -> dict[str, list[str]]:
        """The other servers' work areas that hold files: server name -> file names."""
        areas: dict[str, list[str]] = {}
        with os.scandir(self.root / WORK) as entries:
            for entry in entries:
                if entry.name != self.server and entry.is_dir(follow_symlinks=False):
                    names = _files_in(Path(entry.path))
                    if names:
                        areas[entry.name] = names
        return areas

    def read(self, name: str, limit: int) -> tuple[bytes | None, int]:
        """A file of the work area: its bytes and size; ``None`` for the bytes when it holds more than ``limit``."""
        with (self.work / name).open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                return None, size
            data = file.read(limit + 1)
        return (None if len(data) > limit else data), len(data)

    def finish(self, name: str, failed: bool, when: datetime) -> str:
        """Move a file of the work area to ``done/`` or ``failed/``; answers its name there."""
        return move_without_replacing(self.work / name, self.failed if failed else self.done, name, when)

    def explain(self, final: str, why: str) -> Path:
        """Write why ``failed/<final>`` failed beside it."""
        path = self.failed / f"{final}{ERROR_SUFFIX}"
        path.write_text(why, encoding="utf-8")
        return path


def _files_in(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []
