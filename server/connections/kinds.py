"""Every kind of outgoing connection this server knows: importing a kind's module registers it."""

from __future__ import annotations

from . import amqp, redis, rest, sql
from .amqp import AmqpSpec
from .redis import RedisSpec
from .rest import RestSpec
from .sql import SqlSpec

MODULES = (rest, sql, redis, amqp)

__all__ = ["MODULES", "AmqpSpec", "RedisSpec", "RestSpec", "SqlSpec"]
