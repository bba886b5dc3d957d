"""A named cache as a spec, shared by the admin API, splice.toml (``[[caches]]``) and ``splice cache``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ..channels.specs import Name
from ..core.validation import Whole

DEFAULT = "default"
"""The cache every cluster has (``self.cache["default"]``), made with these defaults unless declared otherwise."""
MiB = 1024 * 1024


class CacheFields(BaseModel):
    """A cache's fields, each checked on its own (``CacheSpec`` adds the rule across them)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True, frozen=True)

    name: Name
    backend: Literal["memory", "redis"] = "memory"
    max_entries: Whole = Field(default=100_000, ge=1, le=100_000_000, description="beyond, the least recently used go")
    max_bytes: Whole = Field(default=64 * MiB, ge=1024, le=64 * 1024 * MiB, description="keys and values, estimated")
    expiry: float | None = Field(default=None, gt=0, le=365 * 86400, description="seconds an entry lives by default")
    max_value: Whole = Field(default=MiB, ge=1, le=512 * MiB, description="bytes; a larger value is refused")
    connection: Name | None = Field(default=None, description="the redis outgoing connection (backend redis)")


class CacheSpec(CacheFields):
    """A cache. ``memory`` (the default): each server keeps its own copy, a set or delete on one reaches every other
    over the cluster bus within milliseconds. ``redis``: one shared copy in the Redis of ``connection`` (an
    outgoing connection of kind ``redis``)."""

    @model_validator(mode="after")
    def _connection(self) -> CacheSpec:
        if self.backend == "redis" and not self.connection:
            raise PydanticCustomError("connection", "a redis cache needs 'connection': a redis outgoing connection")
        if self.backend == "memory" and self.connection:
            raise PydanticCustomError("connection", "only a redis cache takes 'connection'")
        return self


__all__ = ["DEFAULT", "CacheFields", "CacheSpec"]
