"""Topics, subscriptions and topic permissions as specs: one pydantic model each, shared by the admin API,
splice.toml (``[[topics]]``, ``[[subscriptions]]``, ``[[topic_permissions]]``) and ``splice topic|sub``.

Stored in the ODB as a name plus the rest of the spec (``config``); ``LiveConfig`` holds them on every server.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from ..channels.specs import Name
from ..core.validation import Whole
from .names import MAX_TOPIC, PATTERN_PATTERN, TOPIC_PATTERN, check_pattern, check_topic, is_pattern

MiB = 1024 * 1024
MAX_PAYLOAD = 16 * MiB
"""The largest message any topic may allow."""
_SPEC = ConfigDict(defer_build=True, extra="forbid", strict=True, frozen=True)


def _topic(value: str) -> str:
    problem = check_topic(value)
    if problem:
        raise PydanticCustomError("topic", problem)
    return value


def _pattern(value: str) -> str:
    problem = check_pattern(value)
    if problem:
        raise PydanticCustomError("topic_pattern", problem)
    return value


TopicName = Annotated[
    str,
    AfterValidator(_topic),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TOPIC,
            "pattern": TOPIC_PATTERN,
            "examples": ["orders.created"],
        }
    ),
]
TopicPattern = Annotated[
    str,
    AfterValidator(_pattern),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_TOPIC, "pattern": PATTERN_PATTERN, "examples": ["orders.*"]}
    ),
]


class TopicSpec(BaseModel):
    """A topic. Persistent (the default): a publish returns once the message is in the ODB for every subscription
    it matches. Not persistent: kept in memory only, faster, lost if the server stops before delivering it."""

    model_config = _SPEC

    name: TopicName
    persistent: bool = True
    max_payload: Whole = Field(
        default=MiB, ge=1, le=MAX_PAYLOAD, description="bytes; a larger message is refused (413)"
    )
    max_depth: Whole = Field(
        default=100_000,
        ge=1,
        le=100_000_000,
        description="messages waiting per subscription; beyond, publish is refused",
    )
    expiry: float | None = Field(
        default=None, gt=0, le=365 * 86400, description="seconds a message lives unless its publisher says otherwise"
    )
    idempotency_window: float = Field(
        default=86400.0, gt=0, le=30 * 86400, description="seconds a message's idempotency key is remembered"
    )


class SubscriptionSpec(BaseModel):
    """A durable queue of the messages of ``topic`` (a name or a pattern).

    With ``service`` it is a push subscription: the service is invoked once per message, on whichever server
    claims it. Without, it is a pull queue read over REST or WebSocket and acknowledged by its reader.
    """

    model_config = _SPEC

    name: Name
    topic: TopicPattern
    service: Name | None = None
    ordered: bool = Field(default=True, description="deliver one at a time in publish order (false: in parallel)")
    concurrency: Whole = Field(default=8, ge=1, le=1000, description="deliveries at once per server when not ordered")
    delivery_limit: Whole = Field(default=5, ge=1, le=1000, description="attempts before a message is dead-lettered")
    backoff: float = Field(default=1.0, ge=0, le=3600, description="seconds before the first retry; doubles each time")
    max_backoff: float = Field(default=300.0, ge=0, le=86400, description="the longest wait between two attempts")
    lease: float = Field(
        default=30.0, gt=0, le=3600, description="seconds a delivery stays claimed before another server may retry it"
    )
    security: Name | None = Field(
        default=None, description="the security definition that made it over REST, which alone may read it"
    )

    @model_validator(mode="after")
    def _backoffs(self) -> SubscriptionSpec:
        if self.max_backoff < self.backoff:
            raise PydanticCustomError("max_backoff", "max_backoff must be at least backoff")
        return self

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt after ``attempts`` failed ones."""
        return float(min(self.max_backoff, self.backoff * 2.0 ** max(attempts - 1, 0)))


class TopicPermission(BaseModel):
    """What callers authenticated by security definition ``security`` may do: publish to topics matching
    ``publish``, subscribe to (and read) topics matching ``subscribe``. Patterns allowed (``orders.*``)."""

    model_config = _SPEC

    security: Name
    publish: list[TopicPattern] = Field(default_factory=list, max_length=1000)
    subscribe: list[TopicPattern] = Field(default_factory=list, max_length=1000)

    def may(self, action: str, topic: str) -> bool:
        """Whether ``action`` (``publish`` or ``subscribe``) on ``topic`` (a name or a pattern) is allowed.

        A pattern asked for (a subscription to ``orders.*``) needs a permission pattern that covers it: the same
        pattern, or one that matches every topic it can stand for (``orders.**`` covers ``orders.*``)."""
        from .names import matches

        granted = self.publish if action == "publish" else self.subscribe
        if not is_pattern(topic):
            return any(matches(p, topic) for p in granted)
        return any(p == topic or _covers(p, topic) for p in granted)


def _covers(granted: str, asked: str) -> bool:
    """Whether every topic ``asked`` matches is matched by ``granted`` (segment-wise; ``**`` covers the rest)."""
    g, a = granted.split("."), asked.split(".")
    for i, segment in enumerate(g):
        if segment == "**":
            return len(a) > i
        if i >= len(a) or a[i] == "**":
            return False
        if segment != "*" and (a[i] == "*" or a[i] != segment):
            return False
    return len(a) == len(g)


def spec_config(spec: BaseModel, *drop: str) -> dict[str, Any]:
    """What the ODB keeps of a spec in ``config`` (JSON, without the columns of its own)."""
    return spec.model_dump(mode="json", exclude={"name", *drop})


__all__ = [
    "MAX_PAYLOAD",
    "SubscriptionSpec",
    "TopicName",
    "TopicPattern",
    "TopicPermission",
    "TopicSpec",
    "spec_config",
]
