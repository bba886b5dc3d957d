"""Migration 0006: the internal token that older versions kept in clear in the ODB is gone after the upgrade."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from splice.server.odb import connect, migrate

OLD_TOKEN = "h1-old-internal-token-in-clear"


async def test_the_upgrade_forgets_the_internal_token_and_keeps_the_rest(odb_url: str) -> None:
    engine = connect(odb_url)
    try:
        await migrate(engine, "0005")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO clusters (name, internal_token, jobs_changed) VALUES ('shop', :t, 0)"),
                {"t": OLD_TOKEN},
            )
            cluster = (await conn.execute(text("SELECT id FROM clusters WHERE name = 'shop'"))).scalar_one()
            for name, digest in (("internal", "a" * 64), ("admin:host:1", "b" * 64)):
                await conn.execute(
                    text("INSERT INTO tokens (cluster_id, name, token_sha256) VALUES (:c, :n, :d)"),
                    {"c": cluster, "n": name, "d": digest},
                )
        await migrate(engine, "0006")

        def columns(connection: Connection) -> set[str]:
            return {column["name"] for column in inspect(connection).get_columns("clusters")}

        async with engine.connect() as conn:
            assert "internal_token" not in await conn.run_sync(columns)
            tokens = (await conn.execute(text("SELECT name, token_sha256 FROM tokens"))).all()
            names = (await conn.execute(text("SELECT name FROM clusters"))).scalars().all()
        assert [tuple(row) for row in tokens] == [("admin:host:1", "b" * 64)]
        assert names == ["shop"]
    finally:
        await engine.dispose()
