"""Opening the ODB and bringing its schema up to date (Alembic).

A client-server ODB (PostgreSQL, MariaDB) that cannot be reached, or whose connection breaks, raises
``OdbUnavailable`` (a ``SpliceError`` and a ``ConnectionError``) whatever the driver: the admin API answers it
with a 503 naming the ODB, and loops that wait out connection failures wait this out alike. The pool checks a
connection before using it (``pool_pre_ping``), so once the ODB is back the next call works: no restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Dialect, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..core.errors import OdbUnavailable

CONNECT_TIMEOUT = 10
"""Seconds a connection to a client-server ODB may take to open (the drivers wait 60 s by default)."""
_CONNECT_TIMEOUT_ARG = {"asyncpg": "timeout", "aiomysql": "connect_timeout", "asyncmy": "connect_timeout"}

HEAD = "0007"
"""The newest migration; a test checks that it is Alembic's head."""

MIGRATIONS = Path(__file__).with_name("migrations")


def connect(url: str, **options: Any) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    driver = url.split("://", 1)[0].partition("+")[2]
    if driver in _CONNECT_TIMEOUT_ARG:
        options["connect_args"] = {_CONNECT_TIMEOUT_ARG[driver]: CONNECT_TIMEOUT, **options.get("connect_args", {})}
    engine = create_async_engine(url, pool_pre_ping=True, **options)
    _report_unreachable(engine, engine.url.render_as_string(hide_password=True))
    return engine


def _report_unreachable(engine: AsyncEngine, odb: str) -> None:
    """Make a connection that cannot be opened, or that broke, raise ``OdbUnavailable`` naming ``odb``."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, dialect.loaded_dbapi.Error) as exc:  # asyncpg raises OSError, the others their own
            raise OdbUnavailable(odb, _reason(exc)) from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def _broken(context: ExceptionContext) -> None:
        if context.is_disconnect and not context.is_pre_ping:  # a failed ping only makes the pool reconnect
            raise OdbUnavailable(odb, f"the connection broke ({_reason(context.original_exception)})")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every migration not yet applied (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or ``None`` if it was never migrated."""
    async with engine.connect() as connection:
        try:
            row = (await connection.execute(text("SELECT version_num FROM alembic_version"))).first()
        except DBAPIError as exc:
            missing = ("no such table", "doesn't exist", "does not exist", "undefinedtable")
            if any(word in str(exc).lower() for word in missing):
                return None
            raise
    return str(row[0]) if row else None


def head_revision() -> str:
    return HEAD


async def require_head(engine: AsyncEngine, odb_url: str, directory: Path) -> None:
    """Refuse (``ConfigError``) an ODB whose schema is not at ``HEAD``, naming the command that fixes it."""
    from ..core.errors import ConfigError

    revision = await schema_revision(engine)
    if revision != HEAD:
        found = "not initialised" if revision is None else f"at revision {revision}"
        raise ConfigError(
            odb_url.split("@")[-1],
            f"the ODB schema is {found}, this Splice needs {HEAD}: run 'splice migrate {directory}'",
        )
