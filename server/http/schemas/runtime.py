"""Bodies and answers about servers and services: this server, the cluster, pickup, services, invoke, debug."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import BaseModel, Field, model_validator, with_config
from pydantic.types import JsonValue
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from ...core.naming import MAX_SERVICE_NAME
from .common import ServerOutcome, Whole, answer_config, body_config


class ServerInfo(BaseModel):
    model_config = answer_config(
        {
            "name": "server1",
            "cluster": "shop",
            "url": "http://127.0.0.1:17011",
            "pid": 4242,
            "started_at": 1796212800.5,
            "services": 3,
            "modules": 2,
            "deployed_dir": "/srv/shop/servers/server1/work/deployed",
            "load_failures": [],
        }
    )

    name: str
    cluster: str
    url: str
    pid: int
    started_at: float
    services: int
    modules: int
    deployed_dir: str
    load_failures: list[str]


class Bus(BaseModel):
    kind: Literal["redis", "http"]
    connected: bool


@with_config({"extra": "allow"})
class ClusterServer(TypedDict):
    name: str
    url: str
    pid: int | None
    last_sequence: int
    last_seen: str | None
    live: bool


class ClusterAnswer(BaseModel):
    model_config = answer_config(
        {
            "cluster": "shop",
            "bus": {"kind": "http", "connected": True},
            "sequence": 7,
            "servers": [
                {
                    "name": "server1",
                    "url": "http://127.0.0.1:17011",
                    "pid": 4242,
                    "last_sequence": 7,
                    "last_seen": "2026-12-02T10:00:00+00:00",
                    "live": True,
                }
            ],
        }
    )

    cluster: str
    bus: Bus
    sequence: int
    servers: list[ClusterServer]


class SyncBody(BaseModel):
    """A peer's notice: the deployment sequence it recorded."""

    model_config = body_config({"sequence": 7, "origin": "server2"})

    sequence: Whole = Field(ge=0)
    origin: str = ""
    change: dict[str, Any] | None = None
    """The deployment itself when it is small (``splice.server.deploy.change``): a peer one step behind loads it
    without reading the ODB; any other reads the ODB as without it."""


class PickupDir(BaseModel):
    path: str
    holder: str | None
    lease_expires_at: str | None
    acting: bool
    last_batch: dict[str, Any] | None


class PickupQuery(BaseModel):
    local: str = Field("", description="present (any value): answer for this server only, ask no other")


class PickupAnswer(BaseModel):
    model_config = answer_config(
        {
            "server": "server1",
            "config_files": "supported",
            "dirs": [
                {
                    "path": "/srv/shop/pickup",
                    "holder": "server1",
                    "lease_expires_at": "2026-12-02T10:00:30+00:00",
                    "acting": True,
                    "last_batch": None,
                }
            ],
        }
    )

    server: str
    config_files: str
    dirs: list[PickupDir]


@with_config({"extra": "allow"})
class ServiceInfo(TypedDict):
    name: str
    module: str
    path: str
    version: int
    doc: str | None
    input: list[dict[str, Any]]
    output: list[dict[str, Any]]
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None


_SERVICE = {
    "name": "shop.ping",
    "module": "shop.ping",
    "path": "shop/ping.py",
    "class": "Ping",
    "version": 3,
    "doc": None,
    "async": False,
    "input": [],
    "output": [],
    "input_schema": None,
    "output_schema": None,
}


class ServicesAnswer(BaseModel):
    model_config = answer_config({"services": [_SERVICE]})

    services: list[ServiceInfo]


class OneService(BaseModel):
    """A service's ``ServiceInfo`` (``class`` and ``async`` as well)."""

    model_config = {"extra": "allow", **answer_config(_SERVICE)}

    name: str
    module: str
    path: str
    version: int


class InvokeBody(BaseModel):
    model_config = body_config({"service": "shop.ping", "payload": {"id": 7}})

    service: str = Field(min_length=1, max_length=MAX_SERVICE_NAME)
    payload: JsonValue = Field(None, description="any JSON, the service's request payload")


@with_config(
    answer_config({"cid": "5f1c0e7d9a3b4c2d1e0f9a8b", "service": "shop.ping", "status": 200, "payload": "pong"})
)
class InvokeAnswer(TypedDict):
    """The service's answer; a bytes payload comes base64-encoded, with ``payload_encoding``."""

    cid: str
    service: str
    status: int
    payload: JsonValue
    payload_encoding: NotRequired[Literal["base64"]]


class DebugBody(BaseModel):
    """``enabled: true`` listens with debugpy; ``false`` stops debugging (a server that listened restarts)."""

    model_config = body_config({"enabled": True, "host": "127.0.0.1"})

    enabled: bool
    host: str | None = Field(None, min_length=1)


class PycharmBody(BaseModel):
    """``{host, port}`` connects to PyCharm's debug server; ``{connect: false}`` disconnects."""

    model_config = {
        **body_config({"host": "127.0.0.1", "port": 5678}),
        # The rule of the validator below, for the document: a port, unless disconnecting.
        "json_schema_extra": {
            "examples": [{"host": "127.0.0.1", "port": 5678}],
            "anyOf": [{"required": ["connect"], "properties": {"connect": {"const": False}}}, {"required": ["port"]}],
        },
    }

    connect: bool = True
    host: str = Field("127.0.0.1", min_length=1)
    port: Whole | None = Field(None, ge=1, le=65535, description="where PyCharm's debug server listens")

    @model_validator(mode="after")
    def _port_to_connect(self) -> PycharmBody:
        if self.connect and self.port is None:
            raise PydanticCustomError("port", "port: is required to connect (or send connect: false to disconnect)")
        return self


class DebugAnswer(BaseModel):
    """This server's debugging: its attach point (server, pid, host, port, remote_root)."""

    model_config = answer_config(
        {
            "server": "server1",
            "enabled": False,
            "attach_points": [],
            "configured": {
                "server": "server1",
                "process": "server",
                "host": "127.0.0.1",
                "port": 5678,
                "remote_root": "/srv/shop/servers/server1/work/deployed",
                "pid": 4242,
            },
            "pycharm": None,
            "restarting": False,
        }
    )

    server: str
    enabled: bool
    attach_points: list[dict[str, Any]]
    configured: dict[str, Any]
    pycharm: dict[str, Any] | None
    restarting: bool


SyncAnswer = ServerOutcome
