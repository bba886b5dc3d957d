"""SQL connections against the real PostgreSQL and MariaDB of this machine (database ``test``) and SQLite.

Each test makes its own table with a random suffix and drops it; the connection is opened through the kind
registry as a server opens it.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from splice.server.connections import KINDS, ClusterKey, Connection, Connections
from splice.server.connections.sql import SqlSpec, drivers
from splice.server.core.context import CidFilter, current_cid
from splice.server.core.outgoing import Out

PASSWORD = "s3cr3t-Pg7"
ADDRESSES = {
    "postgresql": os.environ.get("SPLICE_TEST_SQL_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("SPLICE_TEST_SQL_MARIADB", "mariadb://root@127.0.0.1:3306/test"),
}

Opener = Callable[..., Connection]


@pytest.fixture
async def open_sql() -> AsyncIterator[Opener]:
    """Opens SQL connections as a server does (``KINDS["sql"].open``) and closes them at the end."""
    opened: list[Connection] = []

    def open_(address: str, password: str | None = None, **options: Any) -> Connection:
        spec = SqlSpec.model_validate({"name": "crm", "kind": "sql", "address": address, **options})
        connection = KINDS["sql"].open(spec, {"password": password} if password else {}, "server1")
        opened.append(connection)
        return connection

    yield open_
    for connection in opened:
        await connection.aclose()


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return ADDRESSES[request.param]


def _sql_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "splice.outgoing" and r.getMessage().startswith("sql crm: ")]


def _roundtrip_blocking(engine: Any, table: str) -> list[tuple[int, str]]:
    """What a plain ``def handle`` does with ``self.out.sql["crm"]`` in its worker thread."""
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (id, name) VALUES (:id, :name)"), {"id": 2, "name": "blocking"})
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(f"SELECT id, name FROM {table} ORDER BY id"))]


async def test_async_and_blocking_engines_share_the_database(
    address: str, open_sql: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    caplog.handler.addFilter(CidFilter())
    connection = open_sql(address, pool_size=2, max_overflow=1, pool_timeout=5.0)
    table = f"splice_sql_{secrets.token_hex(4)}"
    engine = connection.client(False)
    token = current_cid.set("cid-sql-async")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
            await conn.execute(text(f"INSERT INTO {table} (id, name) VALUES (1, 'async')"))
        current_cid.set("cid-sql-blocking")
        blocking = connection.client(True)
        rows = await anyio.to_thread.run_sync(_roundtrip_blocking, blocking, table)
        assert rows == [(1, "async"), (2, "blocking")]
        assert connection.client(True) is blocking
        assert connection.client(False) is engine
        assert (blocking.pool.size(), engine.pool.size()) == (2, 2)
    finally:
        current_cid.reset(token)
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))

    logged = [(r.cid, r.getMessage().removeprefix("sql crm: ").rsplit(" in ", 1)[0]) for r in _sql_lines(caplog)]  # type: ignore[attr-defined]
    for cid, statement in [
        ("cid-sql-async", f"CREATE TABLE {table} (id INTEGER"),
        ("cid-sql-async", f"INSERT INTO {table} (id, name) VALUES (1,"),
        ("cid-sql-blocking", f"INSERT INTO {table} (id, name) VALUES ("),
        ("cid-sql-blocking", f"SELECT id, name FROM {table} ORDER BY id"),
    ]:
        assert any(c == cid and what.startswith(statement) for c, what in logged), (cid, statement, logged)
    assert all(len(what) <= 60 for _, what in logged)


def _no_key() -> ClusterKey:
    raise AssertionError("no secret to decrypt")


async def test_a_service_in_a_worker_thread_gets_the_blocking_engine(tmp_path: Path) -> None:
    """``self.out.sql["crm"]`` as a plain ``def handle`` uses it: through the server's holder, in a worker thread."""
    connections = Connections("server1", _no_key)
    address = f"sqlite:///{tmp_path / 'crm.db'}"
    await connections.reload(
        [{"name": "crm", "kind": "sql", "config": {"name": "crm", "kind": "sql", "address": address}}]
    )

    def handle() -> tuple[str, list[int]]:
        out = Out(connections)
        try:
            engine = out.sql["crm"]
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (x INTEGER)"))
                conn.execute(text("INSERT INTO t VALUES (1), (2)"))
            with engine.connect() as conn:
                return type(engine).__name__, [row.x for row in conn.execute(text("SELECT x FROM t ORDER BY x"))]
        finally:
            out.release()

    try:
        assert await anyio.to_thread.run_sync(handle) == ("Engine", [1, 2])
        out = Out(connections)
        assert type(out.sql["crm"]).__name__ == "AsyncEngine"  # on the loop: what async def handle gets
        out.release()
    finally:
        await connections.close()


async def test_ping_names_the_server(address: str, open_sql: Opener) -> None:
    answer = await open_sql(address).ping()
    product = {"postgresql": "PostgreSQL ", "mariadb": "MariaDB ", "sqlite": "SQLite 3."}
    scheme = address.split(":", 1)[0]
    assert answer.startswith(product[scheme]), answer


async def test_a_failing_statement_is_logged_without_its_parameters(
    open_sql: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "splice.outgoing")
    engine = open_sql(ADDRESSES["postgresql"]).client(False)
    with pytest.raises(Exception, match="splice_no_such_table"):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM splice_no_such_table WHERE x = :x"), {"x": "p4r4m-value"})
    failed = [r for r in _sql_lines(caplog) if r.levelno == logging.WARNING]
    assert len(failed) == 1
    assert "SELECT * FROM splice_no_such_table WHERE x = $1 failed after" in failed[0].getMessage()
    assert "p4r4m-value" not in caplog.text


async def test_the_password_never_shows(open_sql: Opener, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL trusts local logins here, so a password is sent (or not) and ignored: it must show nowhere."""
    caplog.set_level(logging.DEBUG)
    connection = open_sql(ADDRESSES["postgresql"], PASSWORD)
    engine = connection.client(False)
    blocking = connection.client(True)
    assert engine.url.password == PASSWORD  # it is used
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert await anyio.to_thread.run_sync(lambda: blocking.connect().close()) is None
    ping = await connection.ping()
    shown = [
        repr(engine.sync_engine),
        str(engine.url),
        repr(blocking),
        str(blocking.url),
        repr(connection),
        ping,
        caplog.text,
    ]
    assert all(PASSWORD not in text_ for text_ in shown)
    assert "postgres:***@127.0.0.1" in repr(engine.sync_engine)


async def test_relative_sqlite_path_is_resolved_against_the_current_directory(
    open_sql: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    connection = open_sql("sqlite:///data.db")
    monkeypatch.chdir("/")  # where the server is later does not matter
    async with connection.client(False).begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert (tmp_path / "data.db").is_file()
    assert str(connection.client(True).url) == f"sqlite+pysqlite:///{tmp_path / 'data.db'}"


async def test_a_closed_connection_gives_no_engine(open_sql: Opener, tmp_path: Path) -> None:
    connection = open_sql(f"sqlite:///{tmp_path / 'x.db'}")
    connection.client(False)
    await connection.aclose()
    with pytest.raises(RuntimeError, match="SQL connection 'crm' was closed"):
        connection.client(True)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("postgresql://h/db", ("postgresql+asyncpg", "postgresql+psycopg")),
        ("postgresql+asyncpg://h/db", ("postgresql+asyncpg", "postgresql+psycopg")),
        ("postgresql+psycopg://h/db", ("postgresql+psycopg", "postgresql+psycopg")),
        ("postgresql+psycopg2://h/db", ("postgresql+asyncpg", "postgresql+psycopg2")),
        ("mysql://h/db", ("mysql+aiomysql", "mysql+pymysql")),
        ("mariadb://h/db", ("mysql+aiomysql", "mysql+pymysql")),
        ("mariadb+asyncmy://h/db", ("mysql+asyncmy", "mysql+pymysql")),
        ("sqlite:///x.db", ("sqlite+aiosqlite", "sqlite+pysqlite")),
    ],
)
def test_drivers_for_each_face(address: str, expected: tuple[str, str]) -> None:
    assert drivers(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://h/db", "is a URL such as postgresql://user@host/db"),
        ("postgresql:/h/db", "is a URL such as postgresql://user@host/db"),
        ("oracle://h/db", "is a URL such as postgresql://user@host/db"),
        ("postgresql+nosuch://h/db", "cannot use driver 'nosuch' for postgresql (known: asyncpg, pg8000"),
        ("postgresql://u:pw@h/db", "must not hold a password"),
        ("sqlite://", "an in-memory database would be a different empty one"),
        ("sqlite:///:memory:", "an in-memory database would be a different empty one"),
        ("postgresql://h:notaport/db", "not a URL SQLAlchemy can read"),
    ],
)
def test_a_bad_address_is_refused(address: str, message: str) -> None:
    with pytest.raises(ValidationError, match="address") as refused:
        SqlSpec.model_validate({"name": "crm", "kind": "sql", "address": address})
    assert message in str(refused.value)
