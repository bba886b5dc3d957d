"""Publish/subscribe (topics, subscriptions, permissions, messages, deliveries, idempotency keys), caches, and each
server's cluster event counter (``servers.events_boot``, ``events_sent``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mariadb").with_variant(mysql.LONGBLOB(), "mysql")


def _named(table: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        table,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        *columns,
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cluster_id", "name"),
    )


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("events_boot", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("events_sent", sa.BigInteger(), server_default="0", nullable=False))
    _named("pubsub_topics")
    _named(
        "pubsub_subscriptions",
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
    )
    _named("caches")
    op.create_table(
        "pubsub_permissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(length=200), nullable=False),
        sa.Column("publish", sa.JSON(), nullable=False),
        sa.Column("subscribe", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cluster_id", "security"),
    )
    op.create_table(
        "pubsub_messages",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("payload", BLOB, nullable=False),
        sa.Column("is_json", sa.Boolean(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=True),
        sa.Column("publisher", sa.String(length=200), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("published_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "pubsub_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("subscription", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_us", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until_us", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dead_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_pubsub_deliveries_claim",
        "pubsub_deliveries",
        ["cluster_id", "subscription", "state", sa.text("priority DESC"), "id"],
    )
    op.create_index("ix_pubsub_deliveries_message", "pubsub_deliveries", ["message_id"])
    # An ordered claim first asks whether any delivery of its subscription is leased now: a short range here.
    op.create_index("ix_pubsub_deliveries_lease", "pubsub_deliveries", ["cluster_id", "subscription", "lease_until_us"])
    # An unordered claim on a queue whose deliveries mostly wait for a retry finds the due ones here.
    op.create_index("ix_pubsub_deliveries_due", "pubsub_deliveries", ["cluster_id", "subscription", "state", "next_us"])
    op.create_table(
        "pubsub_keys",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cluster_id", "topic", "key"),
    )


def downgrade() -> None:
    for table in (
        "pubsub_keys",
        "pubsub_deliveries",
        "pubsub_messages",
        "pubsub_permissions",
        "caches",
        "pubsub_subscriptions",
        "pubsub_topics",
    ):
        op.drop_table(table)
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("events_sent")
        batch.drop_column("events_boot")
