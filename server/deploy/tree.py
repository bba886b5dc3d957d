"""The deployed modules' directory on disk: files written whole, directories made and taken away again."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_whole(path: Path, source: str) -> list[Path]:
    """Write ``path`` whole (through a temporary file beside it); returns the directories made for it, outermost
    first, for a caller that must take them away again."""
    made = [p for p in reversed(path.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short temporary name: the file's own name may already be as long as the file system allows.
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(source)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return made


def prune(root: Path, directory: Path) -> None:
    """Remove ``directory`` and its parents up to ``root`` while they are empty (after an undeploy)."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def read_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def clear_dir(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            path.unlink()
