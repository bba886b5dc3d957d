"""Queries and answers of watching a cluster: recent deployments, a stored version, a server's log and metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from .common import answer_config

MAX_DEPLOYMENTS = 500
MAX_LOG_LINES = 2000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class DeploymentsQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_DEPLOYMENTS, description="how many, newest first")
    before: int | None = Field(
        None, ge=1, le=2**63 - 1, description="only those with a smaller sequence (the next page)"
    )


class DeploymentRecord(TypedDict):
    sequence: int
    action: str
    """``deploy``, ``undeploy``, or what a configuration change changed (``channel``, ``topic:orders``, ``apply``)."""
    paths: list[str]
    deployed_by: str
    deployed_at: str | None
    origin: str | None


class DeploymentsAnswer(BaseModel):
    model_config = answer_config(
        {
            "sequence": 9,
            "deployments": [
                {
                    "sequence": 9,
                    "action": "deploy",
                    "paths": ["shop/ping.py"],
                    "deployed_by": "dashboard:ann",
                    "deployed_at": "2026-12-02T10:00:00+00:00",
                    "origin": None,
                },
                {
                    "sequence": 8,
                    "action": "channel",
                    "paths": [],
                    "deployed_by": "admin-api",
                    "deployed_at": "2026-12-02T09:58:00+00:00",
                    "origin": None,
                },
            ],
        }
    )

    sequence: int
    """The cluster's newest sequence."""
    deployments: list[DeploymentRecord]


class StoredVersion(BaseModel):
    """One stored version of a module; ``source`` is ``null`` for an undeploy."""

    model_config = answer_config(
        {
            "path": "shop/ping.py",
            "module": "shop.ping",
            "version": 2,
            "action": "deploy",
            "sequence": 7,
            "sha256": SHA,
            "deployed_by": "cli:ann",
            "deployed_at": "2026-12-02T10:00:00+00:00",
            "origin": None,
            "source": "from splice.server import Service\n",
        }
    )

    path: str
    module: str
    version: int
    action: str
    sequence: int
    sha256: str
    deployed_by: str
    deployed_at: str | None
    origin: str | None
    source: str | None


class LogsQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    limit: int = Field(200, ge=1, le=MAX_LOG_LINES, description="at most this many lines (the newest)")
    after: str = Field("", max_length=100, description="a cursor from an earlier answer: only lines written since")
    level: Level = Field("DEBUG", description="the lowest level shown")
    service: str = Field("", max_length=500, description="only lines a service logged (logger splice.service.<name>)")
    cid: str = Field("", max_length=100, description="only lines of this correlation id")
    q: str = Field("", max_length=500, description="only lines containing this text (any case)")


class LogLine(TypedDict):
    at: str
    level: str
    pid: int | None
    logger: str
    cid: str
    message: str
    """The rest of the record: its message and any lines that continue it (a traceback)."""
    service: str | None


class LogsAnswer(BaseModel):
    model_config = answer_config(
        {
            "server": "server1",
            "cursor": "1835742:90211",
            "lines": [
                {
                    "at": "2026-12-02 19:56:07,145",
                    "level": "INFO",
                    "pid": 4242,
                    "logger": "splice.service.orders.get",
                    "cid": "5f1c0e7d9a3b4c2d1e0f9a8b",
                    "message": "order 17 read",
                    "service": "orders.get",
                }
            ],
        }
    )

    server: str
    cursor: str
    """Where to go on from (``after``): opaque."""
    lines: list[LogLine]
    """Oldest first."""


class MetricsQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    service: str = Field("", max_length=500, description="only this service (its figures are zero if never called)")


class MinuteFigures(TypedDict):
    at: int
    """The minute's start, in epoch seconds."""
    calls: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


class CallFigures(TypedDict):
    at: float
    cid: str
    ms: float
    ok: bool
    channel: str | None
    error: str | None


class TotalFigures(TypedDict):
    calls: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    minutes: list[MinuteFigures]


class ServiceFigures(TotalFigures):
    name: str
    recent: list[CallFigures]
    """The last 20 calls, newest first."""
    failures: list[CallFigures]
    """The last 20 failed calls, newest first."""


_MINUTE = {"at": 1796241360, "calls": 12, "errors": 1, "p50_ms": 1.8, "p99_ms": 41.0}
_CALL = {"at": 1796241391.5, "cid": "5f1c0e7d9a3b4c2d1e0f9a8b", "ms": 1.9, "ok": True, "channel": "get-order"}


class MetricsAnswer(BaseModel):
    """Since the server started. A call failed if it raised (but a service's own 4xx ``HTTPError``) or answered a
    status of 500 or more; percentiles come from a histogram whose buckets are 19% apart."""

    model_config = answer_config(
        {
            "server": "server1",
            "started_at": 1796240000.0,
            "now": 1796241400.0,
            "total": {"calls": 12, "errors": 1, "p50_ms": 1.8, "p99_ms": 41.0, "minutes": [_MINUTE]},
            "services": [
                {
                    "name": "orders.get",
                    "calls": 12,
                    "errors": 1,
                    "p50_ms": 1.8,
                    "p99_ms": 41.0,
                    "minutes": [_MINUTE],
                    "recent": [{**_CALL, "error": None}],
                    "failures": [{**_CALL, "ok": False, "error": "ServiceFailed: orders.get failed: KeyError: 'id'"}],
                }
            ],
        }
    )

    server: str
    worker: int | None = Field(
        None, description="which worker process of a server of several these are from (each counts its own calls)"
    )
    started_at: float
    now: float
    total: TotalFigures
    services: list[ServiceFigures]
