"""The operational database (ODB): SQLAlchemy 2 async models, repositories and Alembic migrations.

An adapter at the edge: the core reaches it only through the protocols in ``splice.server.deploy.engine``.
"""

from __future__ import annotations

from .engine import connect, head_revision, migrate
from .repository import OdbRepository

__all__ = ["OdbRepository", "connect", "head_revision", "migrate"]
