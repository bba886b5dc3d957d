"""SQL connections (SQLAlchemy): one engine per connection and server, PostgreSQL, MariaDB/MySQL or SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from .registry import Connection, Kind, OutgoingSpec, register

SCHEMES = ("postgresql", "mysql", "mariadb", "sqlite")


class SqlSpec(OutgoingSpec):
    """``self.out.sql[name]``: a SQLAlchemy ``Engine`` in ``def handle``, an ``AsyncEngine`` in ``async def``."""

    kind: Literal["sql"]
    pool_size: int = Field(default=5, ge=1, le=200, description="pooled connections per server")
    max_overflow: int = Field(default=5, ge=0, le=200)
    pool_timeout: float = Field(default=10.0, gt=0, le=600, description="seconds to wait for a free connection")

    @field_validator("address")
    @classmethod
    def _dsn(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in SCHEMES or "://" not in value:
            raise ValueError(
                f"a SQL connection's address is a URL such as postgresql://user@host/db, mysql://user@host/db"
                f" or sqlite:///path/to.db, got {value!r}"
            )
        return value


def open_sql(spec: SqlSpec, secrets: Mapping[str, str], server: str) -> Connection:
    raise NotImplementedError("the SQL kind is being written")


def _open(spec: Any, secrets: Mapping[str, str], server: str) -> Connection:
    return open_sql(spec, secrets, server)


register(Kind("sql", SqlSpec, _open))
