"""Recent deployments, one stored version and ``X-Splice-Actor`` on one in-process server, every ODB."""

from __future__ import annotations

import logging
import textwrap
from typing import Any

import pytest

from tests.conftest import InProcess

PING = textwrap.dedent(
    """
    from splice.server import Service


    class Ping(Service):
        name = "NAME"

        def handle(self):
            self.response.payload = "pong"
    """
)


def source(name: str) -> str:
    return PING.replace("NAME", name)


async def deploy(server: InProcess, path: str, name: str, **headers: str) -> dict[str, Any]:
    body = {"modules": [{"path": path, "source": source(name)}]}
    answer = await server.admin.post("/splice/admin/deploy", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_recent_deployments_newest_first_with_paths_actors_and_pages(
    server: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="splice.admin")
    await deploy(server, "shop/a.py", "shop.a", **{"X-Splice-Actor": "dashboard:ann"})
    await deploy(server, "shop/b.py", "shop.b")
    channel = {"name": "get-a", "path": "/a", "service": "shop.a"}
    created = await server.admin.post("/splice/admin/channels", json=channel, headers={"X-Splice-Actor": "cli:bob"})
    assert created.status_code == 201, created.text
    undeployed = await server.admin.post(
        "/splice/admin/undeploy",
        json={"paths": ["shop/b.py"], "deployed_by": "ci"},  # the body's own deployed_by wins
        headers={"X-Splice-Actor": "dashboard:ann"},
    )
    assert undeployed.status_code == 200, undeployed.text

    answer = await server.admin.get("/splice/admin/deployments")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = body["deployments"]
    assert body["sequence"] == rows[0]["sequence"]
    assert [(r["action"], r["paths"], r["deployed_by"]) for r in rows] == [
        ("undeploy", ["shop/b.py"], "ci"),
        ("channel", [], "cli:bob"),
        ("deploy", ["shop/b.py"], "admin-api"),
        ("deploy", ["shop/a.py"], "dashboard:ann"),
    ]
    assert [r["sequence"] for r in rows] == sorted((r["sequence"] for r in rows), reverse=True)
    assert all(r["deployed_at"] and r["origin"] is None for r in rows)

    page = (await server.admin.get("/splice/admin/deployments", params={"limit": 2})).json()["deployments"]
    assert page == rows[:2]
    rest = await server.admin.get("/splice/admin/deployments", params={"limit": 2, "before": page[-1]["sequence"]})
    assert rest.json()["deployments"] == rows[2:4]

    history = (await server.admin.get("/splice/admin/modules/shop/a.py/history")).json()
    assert history["versions"][0]["deployed_by"] == "dashboard:ann"

    lines = [r.getMessage() for r in caplog.records if r.name == "splice.admin"]
    assert "admin action: dashboard:ann POST /splice/admin/deploy -> 200" in lines
    assert "admin action: admin-api POST /splice/admin/deploy -> 200" in lines
    assert "admin action: cli:bob POST /splice/admin/channels -> 201" in lines
    assert not any("GET" in line for line in lines)  # reading is not an action


async def test_rollback_and_refusals_are_logged_with_the_actor(
    server: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="splice.admin")
    await deploy(server, "shop/r.py", "shop.r")
    await deploy(server, "shop/r.py", "shop.r2")
    actor = {"X-Splice-Actor": "dashboard:cy"}
    rolled = await server.admin.post("/splice/admin/rollback", json={"path": "shop/r.py", "version": 1}, headers=actor)
    assert rolled.status_code == 200, rolled.text
    refused = await server.admin.post("/splice/admin/rollback", json={"path": "shop/r.py", "version": 9}, headers=actor)
    assert refused.status_code == 404
    history = (await server.admin.get("/splice/admin/modules/shop/r.py/history")).json()
    assert (history["versions"][-1]["deployed_by"], history["versions"][-1]["origin"]) == (
        "dashboard:cy",
        "rollback:v1",
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "splice.admin"]
    assert "admin action: dashboard:cy POST /splice/admin/rollback -> 200" in lines
    assert "admin action: dashboard:cy POST /splice/admin/rollback -> 404" in lines


@pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("header", "recorded"),
    [
        ("dashboard:ann", "dashboard:ann"),
        ("  spaced  ", "spaced"),
        ("x" * 100, "x" * 100),
        ("x" * 101, "admin-api"),  # too long: ignored
        ("tab\there", "admin-api"),  # not printable: ignored
        ("", "admin-api"),
    ],
)
async def test_the_actor_header_is_limited_to_printable_text(server: InProcess, header: str, recorded: str) -> None:
    await deploy(server, "shop/h.py", "shop.h", **{"X-Splice-Actor": header})
    rows = (await server.admin.get("/splice/admin/deployments", params={"limit": 1})).json()["deployments"]
    assert rows[0]["deployed_by"] == recorded


async def test_one_stored_version_with_its_source(server: InProcess) -> None:
    await deploy(server, "shop/v.py", "shop.v1")
    await deploy(server, "shop/v.py", "shop.v2")
    undeployed = await server.admin.post("/splice/admin/undeploy", json={"paths": ["shop/v.py"]})
    assert undeployed.status_code == 200, undeployed.text

    answer = await server.admin.get("/splice/admin/modules/shop/v.py/versions/1")
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["source"] == source("shop.v1")
    assert (first["path"], first["version"], first["action"], first["module"]) == ("shop/v.py", 1, "deploy", "shop.v")
    assert len(first["sha256"]) == 64
    assert first["deployed_by"] == "admin-api"
    assert first["deployed_at"]
    second = (await server.admin.get("/splice/admin/modules/shop/v.py/versions/2")).json()
    assert second["source"] == source("shop.v2")
    assert second["sequence"] > first["sequence"]
    gone = (await server.admin.get("/splice/admin/modules/shop/v.py/versions/3")).json()
    assert (gone["action"], gone["source"], gone["sha256"]) == ("undeploy", None, "")

    missing = await server.admin.get("/splice/admin/modules/shop/v.py/versions/4")
    assert missing.status_code == 404
    assert "shop/v.py has no version 4 (it has v1 to v3)" in missing.json()["error"]["message"]
    never = await server.admin.get("/splice/admin/modules/shop/none.py/versions/1")
    assert never.status_code == 404
    assert "no module was ever deployed at shop/none.py" in never.json()["error"]["message"]
    word = await server.admin.get("/splice/admin/modules/shop/v.py/versions/latest")
    assert word.status_code == 404


@pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "501"}, {"before": "x"}, {"since": "1"}])
async def test_bad_queries_are_refused_naming_the_parameter(server: InProcess, query: dict[str, str]) -> None:
    answer = await server.admin.get("/splice/admin/deployments", params=query)
    assert answer.status_code == 400
    assert answer.json()["error"]["problems"][0]["field"] == next(iter(query))
