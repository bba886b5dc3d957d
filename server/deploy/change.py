"""A deployment as a notice carries it to the other servers: the committed modules and the sequence they follow, so
a server exactly one deployment behind loads them without reading the ODB (``DeploymentEngine.take_change``)."""

from __future__ import annotations

import hashlib
from typing import Any

from ..core.naming import module_name
from .records import ModuleRecord

CHANGE_LIMIT = 256 * 1024
"""Bytes of source, at most, that a deployment's notice carries to the other servers (larger: they read the ODB)."""


def sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def carried(sequence: int, records: dict[str, ModuleRecord]) -> dict[str, Any] | None:
    """What a notice carries of deployment ``sequence`` (the modules it made), or ``None`` when they are larger
    than ``CHANGE_LIMIT``."""
    if sum(len(r.source) for r in records.values()) > CHANGE_LIMIT:
        return None
    keys = ("path", "module", "version", "source", "sha256", "deployed_by", "origin")
    return {
        "after": sequence - 1,
        "sequence": sequence,
        "modules": [{k: getattr(r, k) for k in keys} for r in records.values()],
    }


def records_of(change: dict[str, Any]) -> dict[str, ModuleRecord] | None:
    """The modules of a notice's change, each checked against its path and digest; ``None`` if any is not right."""
    try:
        sequence = int(change["sequence"])
        records = {
            m["path"]: ModuleRecord(
                m["path"],
                m["module"],
                int(m["version"]),
                m["source"],
                m["sha256"],
                sequence,
                m.get("deployed_by") or "",
                "",
                m.get("origin"),
            )
            for m in change["modules"]
        }
    except (KeyError, TypeError, ValueError):
        return None
    for record in records.values():
        if not isinstance(record.source, str) or record.module != module_name(record.path):
            return None
        if sha256(record.source) != record.sha256:
            return None
    return records or None
