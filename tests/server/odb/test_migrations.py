"""Alembic migrations: the head Splice expects, idempotent upgrades, and models that match the schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import LargeBinary, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from splice.server.odb import connect, migrate
from splice.server.odb.engine import HEAD, MIGRATIONS, schema_revision
from splice.server.odb.models import Base


def test_head_constant_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


def _compare_type(
    context: MigrationContext, inspected: object, metadata: object, inspected_type: object, metadata_type: object
) -> bool | None:
    """Alembic's comparison, except that the migration's LONGTEXT and LONGBLOB on MySQL stand for the model's Text
    and LargeBinary."""
    if isinstance(inspected_type, mysql.LONGTEXT) and type(metadata_type) is Text:
        return False
    if isinstance(inspected_type, mysql.LONGBLOB) and type(metadata_type) is LargeBinary:
        return False
    return None


async def test_upgrade_is_idempotent_and_models_match_the_schema(odb_url: str) -> None:
    engine = connect(odb_url)
    try:
        assert await schema_revision(engine) is None
        await migrate(engine)
        await migrate(engine)
        assert await schema_revision(engine) == HEAD

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": _compare_type})
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()
