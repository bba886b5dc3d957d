"""Alembic environment: runs on the connection Splice hands it (see ``splice.server.odb.engine.migrate``)."""

from __future__ import annotations

from alembic import context

from splice.server.odb.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'splice migrate DIR', which supplies the connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
