"""The audit log through the real admin API (in-process server, every ODB backend): what is kept, what is not,
the filters of ``GET /splice/admin/audit``, and that a failing insert never fails the admin call."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.conftest import InProcess

SECRET = "s3cret-audit-Pa55-7f1e"
AUDIT = "/splice/admin/audit"


async def _entries(server: InProcess, want: int, **params: str | int) -> list[dict[str, object]]:
    """The audit entries once at least ``want`` are there (the insert follows the answer)."""
    deadline = time.monotonic() + 10
    while True:
        answer = await server.admin.get(AUDIT, params=params)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, object]] = answer.json()["entries"]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_admin_actions_are_kept_newest_first_without_bodies(server: InProcess) -> None:
    source = "from splice.server import Service\n\nclass Ping(Service):\n    def handle(self):\n        return {}\n"
    deployed = await server.admin.post(
        "/splice/admin/deploy",
        json={"modules": [{"path": "shop/ping.py", "source": source}]},
        headers={"X-Splice-Actor": "cli:ann"},
    )
    assert deployed.status_code == 200, deployed.text
    created = await server.admin.post(
        "/splice/admin/security",
        json={"name": "partners", "kind": "basic", "username": "acme", "password": SECRET},
        headers={"X-Splice-Actor": "dashboard:bob"},
    )
    assert created.status_code == 201, created.text
    refused = await server.admin.post("/splice/admin/channels", json={"name": "x"})
    assert refused.status_code == 400
    assert (await server.admin.get("/splice/admin/services")).status_code == 200  # a read: not kept

    entries = await _entries(server, 3)
    got = [(e["actor"], e["method"], e["path"], e["status"]) for e in entries]
    assert got == [
        ("admin-api", "POST", "/splice/admin/channels", 400),
        ("dashboard:bob", "POST", "/splice/admin/security", 201),
        ("cli:ann", "POST", "/splice/admin/deploy", 200),
    ]
    assert entries[2]["cid"] == deployed.headers["x-splice-cid"]
    assert entries[0]["server"] == "server1"
    at = datetime.fromisoformat(str(entries[0]["at"]))
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=5)
    assert SECRET not in (await server.admin.get(AUDIT)).text

    assert [e["actor"] for e in await _entries(server, 1, actor="cli:ann")] == ["cli:ann"]
    assert [e["path"] for e in await _entries(server, 1, path="/splice/admin/sec")] == ["/splice/admin/security"]
    assert len(await _entries(server, 1, limit=1)) == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await server.admin.get(AUDIT, params={"since": future})).json()["entries"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await server.admin.get(AUDIT, params={"since": past})).json()["entries"]) == 3


async def test_bad_filters_are_refused_naming_the_parameter(server: InProcess) -> None:
    for params, field in (({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"), ({"who": "x"}, "who")):
        answer = await server.admin.get(AUDIT, params=params)
        assert answer.status_code == 400, answer.text
        assert field in answer.text


@pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
async def test_a_failing_insert_is_logged_and_the_call_still_answers(
    server: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = server.runtime
    async with runtime.repository.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("DROP TABLE audit_log"))
    with caplog.at_level(logging.ERROR, logger="splice.server.http.audit"):
        created = await server.admin.post(
            "/splice/admin/security", json={"name": "robots", "kind": "apikey", "key": SECRET}
        )
        assert created.status_code == 201, created.text
    assert any("audit log could not keep" in r.getMessage() for r in caplog.records), caplog.text
    assert SECRET not in caplog.text
