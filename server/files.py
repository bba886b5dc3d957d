"""Owner-only files and directories: what a cluster keeps on disk (its directory, the ODB, logs, keys, tokens)
is readable by the user who runs it and nobody else.

``splice`` and the scheduler and dashboard processes set umask 077, so what they create is owner-only already;
``owner_only`` tightens what was made otherwise (a directory that existed before, a server started by other means,
a file another tool wrote).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700


def owner_only(path: Path) -> None:
    """Take group and other permissions away from ``path``: a directory becomes 0700, a file keeps only its owner's
    bits (0600 for a plain one). A missing path is left alone, and so is one another user owns (not ours to change).
    """
    try:
        found = path.stat()
    except FileNotFoundError:
        return
    if found.st_uid != os.geteuid():
        return
    mode = stat.S_IMODE(found.st_mode)
    wanted = DIRECTORY_MODE if stat.S_ISDIR(found.st_mode) else mode & 0o700
    if mode != wanted:
        os.chmod(path, wanted)


def is_owner_only(path: Path) -> bool:
    """Whether neither group nor others may do anything with ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


__all__ = ["DIRECTORY_MODE", "is_owner_only", "owner_only"]
