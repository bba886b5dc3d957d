"""SQL connections (SQLAlchemy): one engine per connection and server, PostgreSQL, MariaDB/MySQL or SQLite.

``self.out.sql[name]`` is an ``AsyncEngine`` in ``async def handle`` and a blocking ``Engine`` in ``def handle``;
each is made on first use and pooled (``pool_size``, ``max_overflow``, ``pool_timeout``, pre-ping). The address
names the database, with or without a driver: without one, PostgreSQL runs on asyncpg (async) and psycopg 3
(blocking), MariaDB/MySQL on aiomysql and PyMySQL, SQLite on aiosqlite and the standard ``sqlite3``. A driver
given serves the face it can (``postgresql+psycopg`` serves both); the other face keeps its default.

SQLite: a relative path (``sqlite:///data/crm.db``) is resolved against the server's current directory when the
connection is opened, so both engines and every later call use the same file. An in-memory database is refused:
each engine, and each server, would see a different empty one. SQLite files get SQLAlchemy's default pool for
them (a queue of connections) and no pre-ping (a local file has no connection to lose).

The password comes from the connection's ``password`` secret and is put into the URL object, never into a
string: SQLAlchemy renders URLs with ``***`` in reprs and logs. Each statement is logged with its duration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..core.validation import Whole
from ._lazy import ClientPair
from .registry import Connection, Kind, OutgoingSpec, log_call, register

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

SCHEMES = ("postgresql", "mysql", "mariadb", "sqlite")

DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
"""The SQLAlchemy dialect each scheme runs on (MariaDB through the MySQL dialect, which detects MariaDB)."""

ASYNC_DEFAULT = {"postgresql": "asyncpg", "mysql": "aiomysql", "sqlite": "aiosqlite"}
SYNC_DEFAULT = {"postgresql": "psycopg", "mysql": "pymysql", "sqlite": "pysqlite"}
ASYNC_DRIVERS = {
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"aiomysql", "asyncmy"},
    "sqlite": {"aiosqlite"},
}
SYNC_DRIVERS = {
    "postgresql": {"psycopg", "psycopg2", "pg8000"},
    "mysql": {"pymysql", "mysqldb", "mysqlconnector", "mariadbconnector"},
    "sqlite": {"pysqlite"},
}


class SqlSpec(OutgoingSpec):
    """``self.out.sql[name]``: a SQLAlchemy ``Engine`` in ``def handle``, an ``AsyncEngine`` in ``async def``."""

    SCHEMES: ClassVar[tuple[str, ...]] = (
        r"postgresql(?:\+(?:asyncpg|psycopg|psycopg_async|psycopg2|pg8000))?",
        r"(?:mysql|mariadb)(?:\+(?:aiomysql|asyncmy|pymysql|mysqldb|mysqlconnector|mariadbconnector))?",
        r"sqlite(?:\+(?:aiosqlite|pysqlite))?",
    )

    kind: Literal["sql"]
    pool_size: Whole = Field(default=5, ge=1, le=200, description="pooled connections per server")
    max_overflow: Whole = Field(default=5, ge=0, le=200)
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
        url = _parse(value)  # OutgoingSpec refuses a password in it
        if scheme == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError(
                f"a SQL connection to SQLite names a file (sqlite:///path/to.db), got {value!r}: an in-memory"
                " database would be a different empty one in each engine and on each server"
            )
        drivers(value)  # refuses an unknown driver
        return value


def _parse(value: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"a SQL connection's address is not a URL SQLAlchemy can read: {exc}") from None


def drivers(address: str) -> tuple[str, str]:
    """The SQLAlchemy driver names of the async and the blocking engine for ``address`` (a URL).

    ``postgresql://h/db`` -> ``("postgresql+asyncpg", "postgresql+psycopg")``; a driver named in the URL
    replaces the default of each face it can serve."""
    scheme, _, driver = address.split("://", 1)[0].partition("+")
    dialect = DIALECTS[scheme]
    if driver and driver not in ASYNC_DRIVERS[dialect] | SYNC_DRIVERS[dialect]:
        known = sorted(ASYNC_DRIVERS[dialect] | SYNC_DRIVERS[dialect])
        raise ValueError(f"a SQL connection cannot use driver {driver!r} for {scheme} (known: {', '.join(known)})")
    async_driver = driver if driver in ASYNC_DRIVERS[dialect] else ASYNC_DEFAULT[dialect]
    sync_driver = driver if driver in SYNC_DRIVERS[dialect] else SYNC_DEFAULT[dialect]
    return f"{dialect}+{async_driver}", f"{dialect}+{sync_driver}"


class SqlConnection:
    """One SQL connection on one server: its two engines, made on first use, and their statement log."""

    def __init__(self, spec: SqlSpec, secrets: Mapping[str, str], server: str) -> None:
        self.name = spec.name
        self.server = server
        self._spec = spec
        url = _parse(spec.address)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
            url = url.set(database=str(Path.cwd() / url.database))
        url = url.set(username=spec.username or url.username, password=secrets.get("password"))
        async_driver, sync_driver = drivers(spec.address)
        self._urls = {False: url.set(drivername=async_driver), True: url.set(drivername=sync_driver)}
        self._engines = ClientPair(f"SQL connection '{self.name}'", self._make)

    def client(self, blocking: bool) -> Any:
        """The blocking ``Engine`` (``blocking``) or the ``AsyncEngine``, made once, whichever thread asks first."""
        return self._engines.get(blocking)

    def _make(self, blocking: bool) -> Engine | AsyncEngine:
        from sqlalchemy import create_engine
        from sqlalchemy.ext.asyncio import create_async_engine

        url = self._urls[blocking]
        options: dict[str, Any] = {
            "pool_size": self._spec.pool_size,
            "max_overflow": self._spec.max_overflow,
            "pool_timeout": self._spec.pool_timeout,
            "pool_pre_ping": url.get_backend_name() != "sqlite",
        }
        if blocking:
            engine = create_engine(url, **options)
            self._log_statements(engine)
            return engine
        async_engine = create_async_engine(url, **options)
        self._log_statements(async_engine.sync_engine)
        return async_engine

    def _log_statements(self, engine: Engine) -> None:
        from sqlalchemy import event

        name = self.name

        def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            conn.info.setdefault("splice_started", []).append(time.perf_counter())

        def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            started = conn.info["splice_started"].pop()
            log_call("sql", name, _short(statement), started)

        def failed(context: Any) -> None:
            stack = context.connection.info.get("splice_started") if context.connection is not None else None
            if stack and context.statement is not None:
                # the driver's own error: SQLAlchemy's wrapper would add the statement's parameters to the log
                log_call("sql", name, _short(context.statement), stack.pop(), context.original_exception)

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", failed)

    async def ping(self) -> str:
        """``SELECT 1`` on the async engine; answers the server's product and version (``PostgreSQL 15.8``)."""
        from sqlalchemy import text

        engine = self.client(False)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            dialect = conn.dialect
        product = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(dialect.name)
        if dialect.name == "mysql":
            product = "MariaDB" if getattr(dialect, "is_mariadb", False) else "MySQL"
        version = dialect.server_version_info
        if product is None or not version:
            return "SELECT 1 ok"
        return f"{product} {'.'.join(str(part) for part in version)}"

    async def aclose(self) -> None:
        """Dispose of both engines' pools (the blocking one in a worker thread: closing may wait on the network)."""
        await self._engines.aclose(lambda engine: engine.dispose(), lambda engine: engine.dispose())

    def __repr__(self) -> str:
        url = self._urls[False].render_as_string(hide_password=True)
        return f"<SqlConnection {self.name!r} on {self.server}: {url}>"


def _short(statement: str) -> str:
    return " ".join(statement.split())[:60]


def open_sql(spec: SqlSpec, secrets: Mapping[str, str], server: str) -> Connection:
    return SqlConnection(spec, secrets, server)


register(Kind("sql", SqlSpec, open_sql))

__all__ = ["SqlConnection", "SqlSpec", "drivers", "open_sql"]
