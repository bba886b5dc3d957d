"""The cluster-internal token leaves the ODB: it is derived from the cluster key (see cluster/credentials.py).

Until now ``clusters.internal_token`` held it in clear and ``tokens`` a row named ``internal`` with its sha256, and
the admin API took it on every endpoint: anyone who could read the ODB could deploy code. The column goes and so
do those rows; servers and schedulers derive the token from the cluster key, which is not in the ODB.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM tokens WHERE name = 'internal'"))
    # Cleared before the column goes: a table rebuild (SQLite's batch mode) must not copy the old value anywhere.
    op.execute(sa.text("UPDATE clusters SET internal_token = NULL"))
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("internal_token")


def downgrade() -> None:
    # The old code makes a new token when it finds none: nothing to restore.
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("internal_token", sa.String(length=100), nullable=True))
