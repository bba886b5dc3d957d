"""The cluster-internal token leaves the ODB: it is derived from the cluster key (see cluster/credentials.py).

Until now ``clusters.internal_token`` held it in clear and ``tokens`` a row named ``internal`` with its sha256, and
the admin API took it on every endpoint: anyone who could read the ODB could deploy code. The column goes and so
do those rows; servers and schedulers derive the token from the cluster key, which is not in the ODB.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM tokens WHERE name = 'internal'"))
    op.execute(sa.text("UPDATE clusters SET internal_token = NULL"))
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        return  # no ALTER TABLE ... DROP COLUMN before SQLite 3.35: the column stays, empty and unused
    # Not batch mode: on SQLite it rebuilds the table, and dropping the old one fails while servers and tokens
    # rows refer to it (foreign keys are on).
    op.drop_column("clusters", "internal_token")


def downgrade() -> None:
    # The old code makes a new token when it finds none: nothing to restore.
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("clusters")}
    if "internal_token" not in columns:
        op.add_column("clusters", sa.Column("internal_token", sa.String(length=100), nullable=True))
