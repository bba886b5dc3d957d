"""Bodies and answers of caches (``/splice/admin/caches...``).

A cache body is ``cache.specs.CacheSpec`` itself (what a ``[[caches]]`` table of splice.toml says). Entries are
read and written on the server that answers; a change reaches the others as it does from a service.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...cache.specs import CacheFields, CacheSpec
from .common import SERVERS_EXAMPLE, ServerOutcome, Whole, answer_config, body_config

SPEC_EXAMPLE: dict[str, Any] = {"name": "rates", "backend": "memory", "max_entries": 10000, "expiry": 300}
FULL_SPEC: dict[str, Any] = {
    "name": "rates",
    "backend": "memory",
    "max_entries": 10000,
    "max_bytes": 67108864,
    "expiry": 300.0,
    "max_value": 1048576,
    "connection": None,
}


class CacheBody(CacheFields):
    """A cache's definition; ``connection`` (a redis outgoing connection) only with ``backend`` ``redis`` (else 422)."""

    model_config = ConfigDict(
        defer_build=True, extra="forbid", strict=True, frozen=True, json_schema_extra={"examples": [SPEC_EXAMPLE]}
    )


class CacheInfo(BaseModel):
    """A cache's definition and this server's figures (``None`` where its backend does not count: Redis's bytes)."""

    name: str
    backend: Literal["memory", "redis"]
    max_entries: int
    max_bytes: int
    expiry: float | None
    max_value: int
    connection: str | None
    declared: bool = Field(description="defined in the ODB (false: the built-in default cache)")
    entries: int | None
    bytes: int | None
    hits: int
    misses: int
    evictions: int | None


class CachesAnswer(BaseModel):
    model_config = answer_config(
        {
            "caches": [
                {
                    **FULL_SPEC,
                    "name": "default",
                    "expiry": None,
                    "max_entries": 100000,
                    "declared": False,
                    "entries": 12,
                    "bytes": 2048,
                    "hits": 40,
                    "misses": 3,
                    "evictions": 0,
                }
            ]
        }
    )

    caches: list[CacheInfo]


class CacheAnswer(BaseModel):
    """The cache as stored, whether it was created, and each server's outcome."""

    model_config = answer_config({"cache": FULL_SPEC, "created": True, "servers": SERVERS_EXAMPLE})

    cache: CacheSpec
    created: bool
    servers: list[ServerOutcome]


class KeysQuery(BaseModel):
    model_config = {"extra": "forbid"}

    prefix: str = Field(default="", max_length=1000, description="only keys starting with this")
    limit: Whole = Field(default=1000, ge=1, le=100_000, description="at most this many keys, in key order")


class KeysAnswer(BaseModel):
    model_config = answer_config({"cache": "default", "keys": ["rate:EUR", "rate:USD"], "truncated": False})

    cache: str
    keys: list[str]
    truncated: bool = Field(description="more keys match than limit")


class EntryAnswer(BaseModel):
    """One entry as this server holds it: a JSON value, or bytes in base64."""

    model_config = answer_config(
        {"cache": "default", "key": "rate:EUR", "value": 1.08, "encoding": "json", "expires_in": 52.5}
    )

    cache: str
    key: str
    value: Any
    encoding: Literal["json", "base64"]
    expires_in: float | None = Field(description="seconds until it expires (null: never)")


class EntryBody(BaseModel):
    model_config = body_config({"value": {"rate": 1.08}, "expiry": 60})

    value: Any = Field(description="any JSON value (or, with encoding base64, bytes in base64)")
    expiry: float | None = Field(default=None, gt=0, le=365 * 86400, description="seconds (null: the cache's)")
    encoding: Literal["json", "base64"] = "json"


class EntrySet(BaseModel):
    model_config = answer_config({"cache": "default", "key": "rate:EUR", "set": True})

    cache: str
    key: str
    set: bool


class EntryDeleted(BaseModel):
    model_config = answer_config({"cache": "default", "key": "rate:EUR", "existed": True})

    cache: str
    key: str
    existed: bool = Field(description="this server held it (every server deletes it either way)")


class Cleared(BaseModel):
    model_config = answer_config({"cache": "default", "cleared": 12})

    cache: str
    cleared: int = Field(description="entries this server dropped (every server clears)")


class CacheDeleted(BaseModel):
    model_config = answer_config({"deleted": "rates", "servers": SERVERS_EXAMPLE})

    deleted: str
    servers: list[ServerOutcome]
