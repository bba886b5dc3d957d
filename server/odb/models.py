"""ODB tables. Every object belongs to a cluster; deployed modules keep every version they ever had."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Cluster(Base):
    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    jobs_changed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by every change of a job, in the same transaction: what the scheduler watches."""


class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(500))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_sequence: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Renewed by the server every few seconds; ``None`` once it stopped cleanly."""
    events_boot: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The running process's boot id (cluster events carry it; a new one each start)."""
    events_sent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """How many cluster events that boot had sent at its last heartbeat: peers compare it with what they got."""


class Lease(Base):
    """A named role held by one server until ``expires_at`` (the pickup directory's watcher, for one)."""

    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Deployment(Base):
    """One deploy or undeploy call; its id is the cluster-wide increasing sequence number."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    action: Mapped[str] = mapped_column(String(20))
    deployed_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModuleVersion(Base):
    """Every version of every module, kept for history and rollback."""

    __tablename__ = "module_versions"
    __table_args__ = (UniqueConstraint("cluster_id", "path", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    path: Mapped[str] = mapped_column(String(500))
    module: Mapped[str] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    action: Mapped[str] = mapped_column(String(20))
    # LONGTEXT on MySQL/MariaDB, whose TEXT stops at 64 KiB: the migration says so. Saying it here too would
    # import the MySQL dialect into every server at start (~50 ms) for no gain in queries.
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    origin: Mapped[str | None] = mapped_column(String(500), nullable=True)
    """Where the source came from when Splice itself deployed it: ``pickup:<directory>``, ``rollback``."""


class DeployedModule(Base):
    """The module versions the cluster runs now; a row per module, gone when it is undeployed."""

    __tablename__ = "deployed_modules"
    __table_args__ = (UniqueConstraint("cluster_id", "path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    path: Mapped[str] = mapped_column(String(500))
    module: Mapped[str] = mapped_column(String(500))
    version_id: Mapped[int] = mapped_column(ForeignKey("module_versions.id"))


class ServiceRow(Base):
    """The catalog of deployed services (name, module, declared fields), for clients such as the editor."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("cluster_id", "name"), Index("ix_services_cluster_path", "cluster_id", "path"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))
    class_name: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, object]] = mapped_column(JSON)


class SecurityDefinition(Base):
    __tablename__ = "security_definitions"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    header: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Channel(Base):
    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="rest")
    path: Mapped[str] = mapped_column(String(500))
    methods: Mapped[list[str]] = mapped_column(JSON)
    service: Mapped[str] = mapped_column(String(200))
    security_id: Mapped[int | None] = mapped_column(ForeignKey("security_definitions.id"), nullable=True)
    options: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    """What a kind other than REST adds (an AMQP channel's connection and queue, a file channel's directory)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutgoingConnection(Base):
    """An outgoing connection: its spec without secrets (``config``), its secrets encrypted with the cluster key."""

    __tablename__ = "outgoing_connections"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Fernet token of a JSON object (``password``, ``key``, ``token``); never in clear."""
    secret_names: Mapped[list[str]] = mapped_column(JSON)
    """Which secrets are set (shown as ``***``), so nobody needs the key to say so."""
    key_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Token(Base):
    """Admin API tokens; only their sha256 is stored."""

    __tablename__ = "tokens"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Job(Base):
    """A scheduled job: which service to invoke with which payload, and when (``trigger``: ``jobs.triggers``).

    Times the scheduler computes with are integer microseconds since the epoch (UTC): exact on every
    database (MySQL's DATETIME drops fractions), and a run's identity is ``(job_id, slot_us)``.
    """

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    payload: Mapped[object | None] = mapped_column(JSON, nullable=True)
    trigger: Mapped[dict[str, object]] = mapped_column(JSON)
    misfire: Mapped[str] = mapped_column(String(20), default="run_once")
    retries: Mapped[int] = mapped_column(Integer, default=0)
    backoff: Mapped[float] = mapped_column(Float, default=1.0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_due_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The next slot to run; ``None`` once the trigger has no more (or the job is paused)."""
    last_slot_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    run_now_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """A run asked for by hand (``run-now``), not yet started."""
    origin: Mapped[str] = mapped_column(String(500), default="admin-api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_us: Mapped[int] = mapped_column(BigInteger, default=0)


class JobRun(Base):
    """One run of a job: a slot of its trigger (or a run-now), claimed once, whatever scheduler claims it."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job_id", "slot_us"),
        Index("ix_job_runs_cluster_dispatched", "cluster_id", "dispatched_us"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    job_id: Mapped[int] = mapped_column(Integer)
    job_name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    slot_us: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20), default="scheduled")
    status: Mapped[str] = mapped_column(String(20))
    """``claimed`` (not sent yet: a scheduler taking over sends it), ``running`` (sent), ``retrying``, ``ok``,
    ``failed``, ``skipped`` (missed, policy skip), ``interrupted`` (sent, and no outcome came back: its scheduler or
    server died; never sent again)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    missed: Mapped[int] = mapped_column(Integer, default=0)
    """Earlier slots that were missed and folded into this one (never run on their own)."""
    cid: Mapped[str] = mapped_column(String(64))
    scheduler: Mapped[str] = mapped_column(String(200))
    server: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    dispatched_us: Mapped[int] = mapped_column(BigInteger)
    """When it was claimed, then when it was sent."""
    started_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Publish/subscribe and caches. Times are integer microseconds since the epoch (UTC), as for jobs: exact on every
# database. Message and delivery ids are BigIntegers (INTEGER on SQLite, where only that type autoincrements).
BigId = BigInteger().with_variant(Integer, "sqlite")


class Topic(Base):
    """A pub/sub topic: its spec (``splice.server.pubsub.specs.TopicSpec``, without the name) in ``config``."""

    __tablename__ = "pubsub_topics"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Subscription(Base):
    """A subscription: a topic or pattern and, for a push subscription, the service invoked per message."""

    __tablename__ = "pubsub_subscriptions"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(200))
    """A topic name or a pattern (``orders.*``, ``orders.**``)."""
    service: Mapped[str | None] = mapped_column(String(200), nullable=True)
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    """The rest of ``SubscriptionSpec`` (ordered, delivery limit, backoff, lease...)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TopicPermission(Base):
    """What callers authenticated by one security definition may publish to and subscribe to (patterns)."""

    __tablename__ = "pubsub_permissions"
    __table_args__ = (UniqueConstraint("cluster_id", "security"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    security: Mapped[str] = mapped_column(String(200))
    publish: Mapped[list[str]] = mapped_column(JSON)
    subscribe: Mapped[list[str]] = mapped_column(JSON)


class Message(Base):
    """A published message, stored once however many subscriptions it goes to (each has a ``Delivery``)."""

    __tablename__ = "pubsub_messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    topic: Mapped[str] = mapped_column(String(200))
    # LONGBLOB on MySQL/MariaDB (BLOB stops at 64 KiB): the migration says so.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    is_json: Mapped[bool] = mapped_column(Boolean)
    """``payload`` is UTF-8 JSON (else the bytes as published)."""
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    expires_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    publisher: Mapped[str] = mapped_column(String(200), default="")
    cid: Mapped[str] = mapped_column(String(64), default="")
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The idempotency key it was published with, if any."""
    published_us: Mapped[int] = mapped_column(BigInteger)


class Delivery(Base):
    """One message waiting for (or delivered to, not yet acknowledged by, or dead-lettered on) one subscription."""

    __tablename__ = "pubsub_deliveries"
    __table_args__ = (
        Index("ix_pubsub_deliveries_message", "message_id"),
        Index("ix_pubsub_deliveries_lease", "cluster_id", "subscription", "lease_until_us"),
        # When most of a queue waits for retries (its service failing), a claim finds the few due rows here
        # instead of reading past every waiting one in claim order; the planner picks whichever reads less.
        Index("ix_pubsub_deliveries_due", "cluster_id", "subscription", "state", "next_us"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    subscription: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    """The message's, copied so that claims order by (priority desc, id) on one index."""
    state: Mapped[str] = mapped_column(String(10), default="ready")
    """``ready`` (waiting, or leased while ``lease_until_us`` is ahead) or ``dead`` (past the delivery limit)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Deliveries started (counted when claimed, so a delivery that crashed its server counts too)."""
    next_us: Mapped[int] = mapped_column(BigInteger, default=0)
    """Not to be delivered before (a retry's backoff)."""
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until_us: Mapped[int] = mapped_column(BigInteger, default=0)
    """Claimed by ``holder`` until then; after it, the delivery is claimable again (its holder died)."""
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    dead_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Claims read a subscription's ready deliveries in this order (priority highest first, then publish order): the
# index has it as it is, or every claim would sort the whole queue.
Index(
    "ix_pubsub_deliveries_claim",
    Delivery.cluster_id,
    Delivery.subscription,
    Delivery.state,
    Delivery.priority.desc(),
    Delivery.id,
)


class MessageKey(Base):
    """An idempotency key seen on a topic: a second publish with it within the topic's window is not enqueued."""

    __tablename__ = "pubsub_keys"
    __table_args__ = (UniqueConstraint("cluster_id", "topic", "key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[int] = mapped_column(BigInteger)
    created_us: Mapped[int] = mapped_column(BigInteger)


class CacheDefinition(Base):
    """A named cache: its spec (``splice.server.cache.specs.CacheSpec``, without the name) in ``config``."""

    __tablename__ = "caches"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEntry(Base):
    """One admin call that may change something: who made it, what it was, when, and how it ended (no body)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[int] = mapped_column(Integer)
    server: Mapped[str] = mapped_column(String(200))
    cid: Mapped[str] = mapped_column(String(64))


# ``splice audit`` reads a cluster's newest entries first.
Index("ix_audit_log_cluster_at", AuditEntry.cluster_id, AuditEntry.at)
