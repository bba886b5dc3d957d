"""Methods an endpoint does not take: 405 with an ``Allow`` header and a body that says so, on every kind of path.

Before: ``TRACE /splice/admin/services`` and ``TRACE /splice/ping`` answered 405 without ``Allow`` and with the code
``not_found``; channels did it right.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import InProcess


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/splice/admin/services", {"GET"}),
        ("DELETE", "/splice/admin/services", {"GET"}),
        ("PATCH", "/splice/admin/deploy", {"POST"}),
        ("TRACE", "/splice/ping", {"GET", "HEAD"}),
        ("POST", "/splice/ready", {"GET", "HEAD"}),
        ("TRACE", "/splice/metrics", {"GET"}),
        ("PUT", "/splice/openapi.json", {"GET"}),
    ],
)
async def test_a_method_an_endpoint_does_not_take_is_405_with_allow(
    sqlite_server: InProcess, method: str, path: str, allowed: set[str]
) -> None:
    answer = await sqlite_server.admin.request(method, path)
    assert answer.status_code == 405, answer.text
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= allowed
    body = answer.json()
    assert body["error"]["code"] == "method_not_allowed"
    assert method in body["error"]["message"]
    assert body["cid"] == answer.headers["x-splice-cid"]


async def test_an_error_no_handler_expected_is_json_with_the_cid(sqlite_server: InProcess) -> None:
    """Before: Starlette's plain-text ``Internal Server Error`` without a cid (e.g. a driver's error)."""
    from sqlalchemy import text

    from splice.server.http.app import build_app

    async with sqlite_server.runtime.repository.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("DROP TABLE channels"))  # the ODB broken under the server
    # Starlette sends the answer, then raises on (for the ASGI server's own log): this client must not re-raise it
    transport = httpx.ASGITransport(app=build_app(sqlite_server.runtime), raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        answer = await client.get(
            "/splice/admin/channels", headers={"Authorization": sqlite_server.admin.headers["authorization"]}
        )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["error"]["code"] == "internal_error"
    assert body["cid"] == answer.headers["x-splice-cid"]
