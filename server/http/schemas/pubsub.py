"""Bodies and answers of pub/sub: topics, subscriptions, topic permissions, publishing, and a queue's messages.

A topic or subscription body is its spec (``pubsub.specs.TopicSpec``, ``SubscriptionSpec``: what ``[[topics]]``
and ``[[subscriptions]]`` of splice.toml say); a permission body is what one security definition may publish and
subscribe to. Listings add each queue's state as the broker sees it: messages ready, in flight and dead, and the
age of the oldest one waiting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.types import JsonValue
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from ...pubsub.specs import SubscriptionSpec, TopicPattern, TopicPermission, TopicSpec
from .common import SERVERS_EXAMPLE, ServerOutcome, Whole, answer_config, body_config

MAX_HEADERS = 100
MAX_KEY = 200
"""The longest idempotency key (the ODB's column)."""
MAX_PEEK = 1000
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_TOPIC: dict[str, Any] = {"name": "orders.created", "persistent": True, "max_payload": 1048576, "expiry": 3600.0}
_SUBSCRIPTION: dict[str, Any] = {"name": "shipping", "topic": "orders.*", "service": "orders.ship"}
_DELIVERY: dict[str, Any] = {
    "delivery": 41,
    "subscription": "shipping",
    "attempt": 1,
    "state": "ready",
    "last_error": None,
    "message": {
        "id": 17,
        "topic": "orders.created",
        "data": {"order": 1},
        "encoding": "json",
        "headers": {},
        "priority": 0,
        "expires_at": None,
        "publisher": "admin-api",
        "cid": "5f1c0e7d9a3b4c2d1e0f9a8b",
        "key": None,
        "published_at": "2026-12-02T10:00:00+00:00",
    },
}


def _with(example: dict[str, Any]) -> ConfigDict:
    """A spec's own configuration (strict, no unknown fields, frozen) with one example."""
    return ConfigDict(
        defer_build=True, extra="forbid", strict=True, frozen=True, json_schema_extra={"examples": [example]}
    )


class TopicBody(TopicSpec):
    model_config = _with(_TOPIC)


class SubscriptionBody(SubscriptionSpec):
    """A subscription's spec. That ``max_backoff`` is at least ``backoff`` is checked by the handler (422 naming
    both), not here: no JSON schema can compare two fields, so the document cannot say it."""

    model_config = _with(_SUBSCRIPTION)

    @model_validator(mode="after")
    def _backoffs(self) -> SubscriptionBody:  # replaces the spec's validator of that name
        return self


class PermissionBody(BaseModel):
    """What callers authenticated by the security definition of the path may publish and subscribe to."""

    model_config = body_config({"publish": ["orders.*"], "subscribe": ["orders.**", "billing.paid"]})

    publish: list[TopicPattern] = Field(default_factory=list, max_length=1000)
    subscribe: list[TopicPattern] = Field(default_factory=list, max_length=1000)


HeaderKey = Annotated[str, Field(min_length=1, max_length=200)]
HeaderValue = Annotated[str, Field(max_length=4000)]


Base64 = Annotated[
    Annotated[str, Field(pattern=BASE64_PATTERN)] | None,
    WithJsonSchema({"type": "string", "pattern": BASE64_PATTERN, "description": "the message as bytes, base64"}),
]
"""Bytes in a JSON body (never ``null``: a body gives ``data`` or this)."""


class PublishBody(BaseModel):
    """A message: ``data`` (any JSON value) or ``data_base64`` (bytes), one of the two."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [{"required": ["data"]}, {"required": ["data_base64"]}],
            "examples": [{"data": {"order": 1}, "headers": {"source": "shop"}, "key": "order-1"}],
        },
    )

    data: JsonValue = Field(default=None, description="the message, any JSON value")
    data_base64: Base64 = None
    headers: dict[HeaderKey, HeaderValue] = Field(default_factory=dict, max_length=MAX_HEADERS)
    priority: Whole = Field(default=0, ge=-(2**31), le=2**31 - 1, description="higher is delivered first")
    expiry: float | None = Field(
        default=None, gt=0, le=365 * 86400, allow_inf_nan=False, description="seconds (default: the topic's)"
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY,
        description="idempotency key: a repeat within the topic's window is not enqueued again",
    )

    @model_validator(mode="after")
    def _one_payload(self) -> PublishBody:
        given = {"data", "data_base64"} & self.model_fields_set
        if len(given) == 2:
            raise PydanticCustomError("payload", "give data or data_base64, not both")
        if not given or (given == {"data_base64"} and self.data_base64 is None):
            raise PydanticCustomError("payload", "give data (any JSON value) or data_base64 (bytes, base64)")
        return self


class ReplayBody(BaseModel):
    model_config = body_config({"ids": [41, 42]})

    ids: list[Whole] | None = Field(
        default=None, max_length=10_000, description="the dead deliveries to replay (default: every one)"
    )


State = Literal["ready", "dead"]


class PeekQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    limit: int = Field(default=20, ge=1, le=MAX_PEEK, description="at most this many, oldest first")
    state: State = Field(default="ready", description="waiting messages, or dead letters")


class DeadQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    limit: int = Field(default=100, ge=1, le=MAX_PEEK, description="at most this many, oldest first")


class PurgeQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    state: State | None = Field(default=None, description="only waiting messages, or only dead letters (default: all)")


class TopicRow(TopicSpec):
    """A topic: its spec, the subscriptions it feeds, and its depth (messages waiting over them all)."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{**_TOPIC, "subscriptions": ["shipping", "billing"], "depth": 3, "oldest_age": 1.2}]
        },
    )

    subscriptions: list[str]
    depth: int | None = Field(description="messages waiting in its subscriptions (null: the broker did not say)")
    oldest_age: float | None = Field(description="seconds since the oldest of them was published")


class TopicList(BaseModel):
    model_config = answer_config({"topics": [{**_TOPIC, "subscriptions": ["shipping"], "depth": 0}]})

    topics: list[TopicRow]


class TopicAnswer(BaseModel):
    """The topic as stored, whether it was created (or changed), and each server's outcome."""

    model_config = answer_config({"topic": _TOPIC, "created": True, "servers": SERVERS_EXAMPLE})

    topic: TopicSpec
    created: bool
    servers: list[ServerOutcome]


class SubscriptionRow(SubscriptionSpec):
    """A subscription: its spec, and its queue now (messages of a non-persistent topic: those in this server's
    memory). A figure is null when this server does not know the subscription yet."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{**_SUBSCRIPTION, "ready": 3, "in_flight": 1, "dead": 0, "oldest_age": 1.2}]},
    )

    ready: int | None = Field(description="messages waiting (retries included), not claimed now")
    in_flight: int | None = Field(description="claimed, their lease not run out")
    dead: int | None = Field(description="dead letters, kept until replayed or purged")
    oldest_age: float | None = Field(description="seconds since the oldest waiting or claimed one was published")


class SubscriptionList(BaseModel):
    model_config = answer_config({"subscriptions": [{**_SUBSCRIPTION, "ready": 3, "in_flight": 1, "dead": 0}]})

    subscriptions: list[SubscriptionRow]


class SubscriptionAnswer(BaseModel):
    """The subscription as stored, whether it was created, what to look at (``warnings``), each server's outcome."""

    model_config = answer_config(
        {
            "subscription": _SUBSCRIPTION,
            "created": True,
            "warnings": ["no service named 'orders.ship' is deployed yet: deliveries to it fail until one is"],
            "servers": SERVERS_EXAMPLE,
        }
    )

    subscription: SubscriptionSpec
    created: bool
    warnings: list[str]
    servers: list[ServerOutcome]


class PermissionList(BaseModel):
    model_config = answer_config({"permissions": [{"security": "shop", "publish": ["orders.*"], "subscribe": []}]})

    permissions: list[TopicPermission]


class PermissionAnswer(BaseModel):
    model_config = answer_config(
        {
            "permission": {"security": "shop", "publish": ["orders.*"], "subscribe": []},
            "created": True,
            "servers": SERVERS_EXAMPLE,
        }
    )

    permission: TopicPermission
    created: bool
    servers: list[ServerOutcome]


class PublishAnswer(BaseModel):
    """The message's id, the subscriptions it went to, and whether its key made it a repeat (nothing enqueued)."""

    model_config = answer_config(
        {"id": 17, "topic": "orders.created", "subscriptions": 2, "duplicate": False, "persistent": True}
    )

    id: int | str
    topic: str
    subscriptions: int
    duplicate: bool
    persistent: bool


class MessageRow(TypedDict):
    """A message as the admin API shows it: ``data`` is JSON, or base64 when ``encoding`` says so."""

    id: int | str
    topic: str
    data: JsonValue
    encoding: Literal["json", "base64"]
    headers: dict[str, str]
    priority: int
    expires_at: str | None
    publisher: str
    cid: str
    key: str | None
    published_at: str | None


class DeliveryRow(TypedDict):
    """One message waiting in (or dead-lettered on) a subscription; ``delivery`` is what replay names."""

    delivery: int
    subscription: str
    attempt: int
    state: str
    last_error: str | None
    message: MessageRow


class MessagesAnswer(BaseModel):
    model_config = answer_config({"subscription": "shipping", "state": "ready", "messages": [_DELIVERY]})

    subscription: str
    state: State
    messages: list[DeliveryRow]


class DeadRow(DeliveryRow):
    """A dead letter: the attempts it was given and the error of the last."""

    attempts: int


class DeadAnswer(BaseModel):
    model_config = answer_config(
        {
            "subscription": "shipping",
            "dead": [{**_DELIVERY, "state": "dead", "attempt": 5, "attempts": 5, "last_error": "ValueError: no stock"}],
        }
    )

    subscription: str
    dead: list[DeadRow]


class PurgeAnswer(BaseModel):
    model_config = answer_config({"subscription": "shipping", "state": "dead", "purged": 3})

    subscription: str
    state: State | None
    purged: int


class ReplayAnswer(BaseModel):
    model_config = answer_config({"subscription": "shipping", "replayed": 3})

    subscription: str
    replayed: int
