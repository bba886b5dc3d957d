"""A real cluster: server liveness, leases, the internal token, where module versions came from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("internal_token", sa.String(length=100), nullable=True))
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("module_versions") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=500), nullable=True))
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cluster_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("module_versions") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("last_seen")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("internal_token")
