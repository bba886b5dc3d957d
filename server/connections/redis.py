"""Redis connections (redis-py): a pooled client per connection and server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from .registry import Connection, Kind, OutgoingSpec, register


class RedisSpec(OutgoingSpec):
    """``self.out.redis[name]``: ``redis.Redis`` in ``def handle``, ``redis.asyncio.Redis`` in ``async def``."""

    kind: Literal["redis"]
    max_connections: int = Field(default=20, ge=1, le=1000, description="pooled connections per server")
    timeout: float = Field(default=5.0, gt=0, le=600, description="seconds for one command")

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"a Redis connection's address is a redis:// or rediss:// URL, got {value!r}")
        return value


def open_redis(spec: RedisSpec, secrets: Mapping[str, str], server: str) -> Connection:
    raise NotImplementedError("the Redis kind is being written")


def _open(spec: Any, secrets: Mapping[str, str], server: str) -> Connection:
    return open_redis(spec, secrets, server)


register(Kind("redis", RedisSpec, _open))
