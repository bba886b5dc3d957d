"""The credential the servers and schedulers of one cluster present to each other (cluster sync, cluster events,
the scheduler's batches, pickup and per-server calls forwarded by a peer).

It is derived from the cluster key (``$SPLICE_SECRET_KEY`` or the cluster directory's ``secret-key``), never stored
in the ODB: a database reader cannot present it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings


def internal_token(settings: Settings) -> str:
    """This cluster's internal token (``""``: not derived yet; the repository keeps the ODB's)."""
    return ""


__all__ = ["internal_token"]
