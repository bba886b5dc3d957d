"""``connect``: a PostgreSQL or MariaDB ODB that cannot be reached raises ``OdbUnavailable`` naming it, whatever the
driver raises (asyncpg a bare ``OSError``, aiomysql its ``OperationalError``), with the password hidden."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from splice.server.core.errors import OdbUnavailable
from splice.server.http.responses import http_status
from splice.server.odb import connect
from tests.conftest import free_port


@pytest.mark.parametrize("scheme", ["postgresql+asyncpg", "mysql+aiomysql"])
async def test_an_odb_that_cannot_be_reached_raises_odb_unavailable_naming_it(scheme: str) -> None:
    port = free_port()  # nothing listens there
    engine = connect(f"{scheme}://splice:s3cr3t-word@127.0.0.1:{port}/odb")
    try:
        with pytest.raises(OdbUnavailable) as raised:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    error = raised.value
    assert error.odb == f"{scheme}://splice:***@127.0.0.1:{port}/odb"
    assert f"the ODB ({error.odb}) cannot be reached" in str(error)
    assert "s3cr3t-word" not in str(error)
    assert isinstance(error, ConnectionError)  # loops that wait out connection failures wait this out too
    assert http_status(error) == 503
    assert error.as_dict()["code"] == "odb_unavailable"
