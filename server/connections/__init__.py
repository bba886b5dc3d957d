"""Outgoing connections: REST, SQL, Redis and AMQP clients that services use by name (``self.out.rest["x"]``).

Defined once in the cluster (splice.toml ``[[outgoing]]``, the admin API, ``splice outgoing``), kept in the
ODB with their secrets encrypted by the cluster key, and reconfigured on every server at run time.
"""

from __future__ import annotations

from .live import Connections, ConnectionUnusable
from .registry import KINDS, Connection, Kind, OutgoingSpec, register
from .secrets import KEY_FILE, KEY_VARIABLE, MASK, ClusterKey, SecretsError

__all__ = [
    "KEY_FILE",
    "KEY_VARIABLE",
    "KINDS",
    "MASK",
    "ClusterKey",
    "Connection",
    "ConnectionUnusable",
    "Connections",
    "Kind",
    "OutgoingSpec",
    "SecretsError",
    "register",
]
