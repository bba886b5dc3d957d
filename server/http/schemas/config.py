"""Bodies and answers of the cluster's configuration: channels, security definitions, declaration files.

A channel body is ``channels.specs.ChannelSpec`` itself, and a security definition body is a
``channels.specs`` spec plus its secret: what a declaration file (``splice.toml``) can say, no more, no less.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, with_config
from typing_extensions import TypedDict

from ...channels.specs import (
    AmqpChannel,
    ApiKeySecurity,
    BasicSecurity,
    ChannelSpec,
    FileChannel,
    JsonRpcChannel,
    WebSocketChannel,
    channel_kind,
)
from .common import BY_MAX, SERVERS_EXAMPLE, ServerOutcome, answer_config, body_config

Secret = Annotated[str, Field(min_length=1, description="stored only as a salted hash, never shown again")]


class ChannelBody(ChannelSpec):
    model_config = {
        **ChannelSpec.model_config,
        "json_schema_extra": {
            "examples": [{"name": "get-order", "path": "/orders/{id}", "service": "orders.get", "methods": ["GET"]}]
        },
    }


def _example(spec: Any, example: dict[str, Any]) -> ConfigDict:
    """A channel spec's configuration (strict, no unknown fields, frozen) with one example."""
    return ConfigDict(
        defer_build=True, extra="forbid", strict=True, frozen=True, json_schema_extra={"examples": [example]}
    )


class WebSocketChannelBody(WebSocketChannel):
    model_config = _example(
        WebSocketChannel, {"name": "live-orders", "kind": "websocket", "path": "/ws/orders", "service": "orders.live"}
    )


class JsonRpcChannelBody(JsonRpcChannel):
    model_config = _example(
        JsonRpcChannel, {"name": "rpc", "kind": "jsonrpc", "path": "/rpc", "services": ["orders.*"]}
    )


class AmqpChannelBody(AmqpChannel):
    model_config = _example(
        AmqpChannel,
        {"name": "orders-in", "kind": "amqp", "service": "orders.take", "connection": "mq", "queue": "orders"},
    )


class FileChannelBody(FileChannel):
    model_config = _example(
        FileChannel, {"name": "invoices", "kind": "file", "service": "invoices.read", "directory": "inbox"}
    )


AnyChannelBody = Annotated[
    Annotated[ChannelBody, Tag("rest")]
    | Annotated[WebSocketChannelBody, Tag("websocket")]
    | Annotated[JsonRpcChannelBody, Tag("jsonrpc")]
    | Annotated[AmqpChannelBody, Tag("amqp")]
    | Annotated[FileChannelBody, Tag("file")],
    Discriminator(channel_kind),
]
"""A channel of any kind (``kind``: rest when left out, websocket, jsonrpc, amqp, file)."""


class ChannelAnswer(BaseModel):
    """The channel created (its kind's fields too); ``warning`` says when no service of that name is deployed yet."""

    model_config = ConfigDict(defer_build=True, extra="allow") | answer_config(
        {
            "name": "get-order",
            "path": "/orders/{id}",
            "methods": ["GET"],
            "service": "orders.get",
            "security": None,
            "warning": None,
            "servers": SERVERS_EXAMPLE,
        }
    )

    name: str
    kind: str = "rest"
    path: str | None = None
    methods: list[str] | None = None
    service: str | None = None
    security: str | None = None
    warning: str | None
    servers: list[ServerOutcome]


@with_config({"extra": "allow"})
class ChannelRow(TypedDict):
    name: str
    kind: str
    path: str
    methods: list[str]
    service: str
    security: str | None
    options: dict[str, Any] | None


class ChannelsAnswer(BaseModel):
    model_config = answer_config(
        {
            "channels": [
                {
                    "name": "get-order",
                    "kind": "rest",
                    "path": "/orders/{id}",
                    "methods": ["GET"],
                    "service": "orders.get",
                    "security": None,
                }
            ]
        }
    )

    channels: list[ChannelRow]


class BasicSecurityBody(BasicSecurity):
    model_config = body_config({"name": "partners", "kind": "basic", "username": "acme", "password": "s3cret"})

    password: Secret


class ApiKeySecurityBody(ApiKeySecurity):
    model_config = body_config({"name": "robots", "kind": "apikey", "header": "X-API-Key", "key": "k3y"})

    key: Secret


SecurityBody = Annotated[BasicSecurityBody | ApiKeySecurityBody, Field(discriminator="kind")]


class SecurityRow(BaseModel):
    name: str
    kind: Literal["basic", "apikey"]
    username: str | None
    header: str | None


class SecurityAnswer(SecurityRow):
    model_config = answer_config(
        {"name": "partners", "kind": "basic", "username": "acme", "header": None, "servers": SERVERS_EXAMPLE}
    )

    servers: list[ServerOutcome]


class SecurityListAnswer(BaseModel):
    """Security definitions; their secrets are never shown."""

    model_config = answer_config(
        {"security": [{"name": "partners", "kind": "basic", "username": "acme", "header": None}]}
    )

    security: list[SecurityRow]


class ApplyBody(BaseModel):
    """A declaration file's text, and the secrets it names by environment variable."""

    model_config = body_config({"file": "splice.toml", "text": "", "secrets": {}, "dry_run": True})

    text: str = Field(description="the TOML file's contents")
    file: str = Field("splice.toml", description="its name, for messages (default splice.toml)")
    secrets: dict[str, str] = Field(default_factory=dict, description="environment variable name to value")
    prune: bool = False
    dry_run: bool = False
    applied_by: str = Field("admin-api", max_length=BY_MAX, description="who applies it (default admin-api)")


class Change(BaseModel):
    kind: Literal["security", "outgoing", "channel", "job", "topic", "subscription", "topic_permission", "cache"]
    name: str
    action: Literal["create", "update", "delete", "unchanged"]
    fields: list[str]


class ApplyAnswer(BaseModel):
    """The plan carried out (or, with ``dry_run``, the plan that would be) and each server's outcome."""

    model_config = answer_config(
        {
            "server": "server1",
            "file": "splice.toml",
            "changed": True,
            "counts": {"create": 1, "update": 0, "delete": 0, "unchanged": 0},
            "changes": [{"kind": "channel", "name": "get-order", "action": "create", "fields": []}],
            "warnings": [],
            "prune": False,
            "dry_run": False,
            "servers": SERVERS_EXAMPLE,
            "status": "applied",
        }
    )

    server: str
    file: str
    changed: bool
    counts: dict[str, int]
    changes: list[Change]
    warnings: list[str]
    prune: bool
    dry_run: bool
    servers: list[ServerOutcome]
    status: Literal["applied", "partial", "unchanged", "dry_run"]
