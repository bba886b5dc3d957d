"""Opening the ODB and bringing its schema up to date (Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
    return create_async_engine(url, pool_pre_ping=True, **options)


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
