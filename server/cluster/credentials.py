"""The credential the servers and schedulers of one cluster present to each other (cluster sync, cluster events,
the scheduler's batches, pickup and per-server calls forwarded by a peer).

It is derived from the cluster key (``$SPLICE_SECRET_KEY`` or the cluster directory's ``secret-key``), never stored
in the ODB: a database reader cannot present it. Every server and scheduler of a cluster therefore needs the same
key, as for outgoing connections' secrets. The admin API accepts it only on the paths that the cluster's own
processes call (``http.admin.INTERNAL_PATHS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..connections.secrets import ClusterKey

if TYPE_CHECKING:
    from ..config import Settings

PURPOSE = "splice internal token v1\0"
"""What the key is asked for, followed by the cluster's name: another cluster sharing the key gets another token."""


def internal_token(settings: Settings) -> str:
    """This cluster's internal token: HMAC-SHA256 of the cluster key over ``PURPOSE`` and the cluster's name, hex.

    Makes the directory's ``secret-key`` (mode 0600) when neither it nor ``$SPLICE_SECRET_KEY`` exists yet, except for
    a process configured by the environment alone (a container): there a key of its own would give it a token its
    peers refuse, so a missing ``$SPLICE_SECRET_KEY`` is an error saying so."""
    key = ClusterKey.load(settings.directory, create=not settings.from_environment)
    return key.derive(PURPOSE + settings.cluster_name)


__all__ = ["PURPOSE", "internal_token"]
