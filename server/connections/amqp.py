"""AMQP connections (RabbitMQ through aio-pika): publish with publisher confirms to a declared exchange."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from .registry import Connection, Kind, OutgoingSpec, register


class AmqpSpec(OutgoingSpec):
    """``self.out.amqp[name].publish(body, routing_key=...)``: returns once the broker confirmed the message.

    AMQP channels (``kind = "amqp"`` channels) consume through these connections too.
    """

    kind: Literal["amqp"]
    exchange: str = Field(default="", max_length=255, description="where publish sends; '' is the default exchange")
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "direct"
    declare: bool = Field(default=False, description="declare the exchange (durable) when first used")
    routing_key: str = Field(default="", max_length=255, description="used when publish names none")
    persistent: bool = Field(default=True, description="messages survive a broker restart")
    timeout: float = Field(default=10.0, gt=0, le=600, description="seconds to wait for connect and confirms")

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError(f"an AMQP connection's address is an amqp:// or amqps:// URL, got {value!r}")
        return value


def open_amqp(spec: AmqpSpec, secrets: Mapping[str, str], server: str) -> Connection:
    raise NotImplementedError("the AMQP kind is being written")


def _open(spec: Any, secrets: Mapping[str, str], server: str) -> Connection:
    return open_amqp(spec, secrets, server)


register(Kind("amqp", AmqpSpec, _open))
