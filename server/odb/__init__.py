"""The operational database (ODB): SQLAlchemy 2 async models, repositories by aggregate and Alembic migrations.

An adapter at the edge: the core reaches it only through protocols (``splice.server.deploy.engine``'s for
deployments, ``splice.server.jobs.JobStore`` for jobs). ``OdbRepository`` is the one object a server or the
scheduler holds; ``JobRepository`` is made on it for jobs and their runs.
"""

from __future__ import annotations

from .cluster import seen_within
from .engine import connect, head_revision, migrate, require_head
from .jobs import JobRepository
from .outgoing import Sealed
from .repository import OdbRepository

__all__ = [
    "JobRepository",
    "OdbRepository",
    "Sealed",
    "connect",
    "head_revision",
    "migrate",
    "require_head",
    "seen_within",
]
