"""``OdbRepository``: every read and write Splice makes in one cluster's scope but jobs, one class per aggregate.

The aggregates live in modules of their own: ``deployments`` (module versions, sequence numbers),
``channels`` (channels, security definitions, ``splice apply``), ``cluster`` (servers, leases, tokens,
configuration changes), on the scope of ``scope``. ``OdbRepository`` mixes them into the one object the
runtime holds; jobs and their runs are ``jobs.JobRepository``, made on the same scope.
"""

from __future__ import annotations

from .channels import OdbChannels
from .cluster import OdbCluster, seen_within
from .deployments import OdbDeployments, OdbDeployTransaction
from .outgoing import OdbOutgoing, Sealed
from .pubsub import OdbMessages
from .topics import OdbTopics

__all__ = ["OdbDeployTransaction", "OdbRepository", "Sealed", "seen_within"]


class OdbRepository(OdbDeployments, OdbChannels, OdbOutgoing, OdbTopics, OdbMessages, OdbCluster):
    """All ODB access of one cluster (but its jobs): deployments, channels and security, servers and leases."""
