"""Deployment history, rollback and declaration files (``splice apply``) on one in-process server, every ODB.

Rollback goes through the normal deployment path (validation included) and records a new version;
applying a declaration file creates, updates and (with prune) deletes channels and security definitions in
one change, and applying the same file again changes nothing and records nothing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from splice.server.declare.reader import DeclarationError
from splice.server.runtime import Runtime
from tests.conftest import InProcess

ORDERS = textwrap.dedent(
    """
    from splice.server import Service


    class GetOrder(Service):
        name = "orders.get"

        def handle(self):
            self.response.payload = {"id": self.request.path_params.get("id"), "version": VERSION}
    """
)


def orders(version: int) -> str:
    return ORDERS.replace("VERSION", str(version))


def runtime_of(server: InProcess) -> Runtime:
    assert isinstance(server.runtime, Runtime)
    return server.runtime


async def deploy(server: InProcess, path: str, source: str) -> dict[str, Any]:
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": path, "source": source}]})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def invoke(server: InProcess, name: str) -> Any:
    answer = await server.admin.post("/splice/admin/invoke", json={"service": name})
    assert answer.status_code == 200, answer.text
    return answer.json()["payload"]


async def rollback(server: InProcess, path: str, version: object) -> httpx.Response:
    return await server.admin.post("/splice/admin/rollback", json={"path": path, "version": version})


# -- history and rollback ------------------------------------------------------------------------------------


async def test_rollback_deploys_the_stored_source_as_a_new_version(server: InProcess) -> None:
    for version in (1, 2, 3):
        await deploy(server, "shop/orders.py", orders(version))
    assert (await invoke(server, "orders.get"))["version"] == 3

    answer = await rollback(server, "shop/orders.py", 1)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["rolled_back_to"], body["version"]) == ("rolled_back", 1, 4)
    assert body["modules"][0]["services"] == ["orders.get"]
    assert [s["status"] for s in body["servers"]] == ["deployed"]
    assert (await invoke(server, "orders.get"))["version"] == 1
    assert runtime_of(server).engine.records["shop/orders.py"].source == orders(1)

    history = (await server.admin.get("/splice/admin/modules/shop/orders.py/history")).json()
    assert history["current"] == 4
    assert [(v["version"], v["action"], v["origin"]) for v in history["versions"]] == [
        (1, "deploy", None),
        (2, "deploy", None),
        (3, "deploy", None),
        (4, "deploy", "rollback:v1"),
    ]
    assert history["versions"][3]["sha256"] == history["versions"][0]["sha256"]
    sequences = [v["sequence"] for v in history["versions"]]
    assert sequences == sorted(sequences)
    assert sequences[3] == body["sequence"]


async def test_rollback_refuses_unknown_paths_versions_and_undeploys(server: InProcess) -> None:
    await deploy(server, "shop/orders.py", orders(1))
    await server.admin.post("/splice/admin/undeploy", json={"paths": ["shop/orders.py"]})

    unknown_path = await rollback(server, "shop/nothing.py", 1)
    assert unknown_path.status_code == 404
    assert "no module was ever deployed at shop/nothing.py" in unknown_path.json()["error"]["message"]
    unknown_version = await rollback(server, "shop/orders.py", 7)
    assert unknown_version.status_code == 404
    assert unknown_version.json()["error"]["message"] == "shop/orders.py has no version 7 (it has v1 to v2)"
    undeploy = await rollback(server, "shop/orders.py", 2)
    assert undeploy.status_code == 422
    assert undeploy.json()["error"]["code"] == "rollback_refused"
    assert "v2 recorded an undeploy" in undeploy.json()["error"]["message"]
    for bad in (0, "2", True, None):
        assert (await rollback(server, "shop/orders.py", bad)).status_code == 400, bad

    # An undeployed module comes back by rolling back to a version that deployed it.
    back = await rollback(server, "shop/orders.py", 1)
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 3
    assert (await invoke(server, "orders.get"))["version"] == 1


async def test_rollback_to_a_version_that_no_longer_validates_changes_nothing(server: InProcess) -> None:
    common = "from splice.server import Service\n\n\nclass Rate(Service):\n    def handle(self):\n        pass\n"
    await deploy(server, "shop/common.py", common)
    await deploy(server, "shop/orders.py", "from shop import common\n" + orders(1))
    await deploy(server, "shop/orders.py", orders(2))
    undeployed = await server.admin.post("/splice/admin/undeploy", json={"paths": ["shop/common.py"]})
    assert undeployed.status_code == 200, undeployed.text

    answer = await rollback(server, "shop/orders.py", 1)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["error"]["problems"]
    assert problems[0]["path"] == "shop/orders.py"
    assert "common" in problems[0]["message"]
    assert (await invoke(server, "orders.get"))["version"] == 2
    history = (await server.admin.get("/splice/admin/modules/shop/orders.py/history")).json()
    assert (history["current"], len(history["versions"])) == (2, 2)


# -- declaration files ---------------------------------------------------------------------------------------

DECLARATION = textwrap.dedent(
    """\
    [[security]]
    name = "partners"
    kind = "basic"
    username = "acme"
    password_env = "PARTNERS_PASSWORD"

    [[channels]]
    name = "get-order"
    path = "/orders/{id}"
    service = "orders.get"
    methods = ["GET"]
    security = "partners"
    """
)
SECRET = "correct horse battery staple"


async def apply(server: InProcess, text: str, status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"file": "splice.toml", "text": text, "secrets": {"PARTNERS_PASSWORD": SECRET}, **extra}
    answer = await server.admin.post("/splice/admin/apply", json=body)
    assert answer.status_code == status, answer.text
    assert SECRET not in answer.text
    result: dict[str, Any] = answer.json()
    return result


def changes(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["name"]) for c in answer["changes"] if c["action"] != "unchanged"]


async def test_apply_creates_then_changes_nothing_the_second_time(server: InProcess) -> None:
    await deploy(server, "shop/orders.py", orders(1))
    runtime = runtime_of(server)
    first = await apply(server, DECLARATION)
    assert (first["status"], first["changed"]) == ("applied", True)
    assert changes(first) == [("create", "security", "partners"), ("create", "channel", "get-order")]
    assert [s["status"] for s in first["servers"]] == ["deployed"]
    assert first["warnings"] == []

    assert (await server.client.get("/orders/42")).status_code == 401
    answer = await server.client.get("/orders/42", auth=("acme", SECRET))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "42", "version": 1}
    assert (await server.client.get("/orders/42", auth=("acme", "wrong"))).status_code == 401

    sequence = await runtime.repository.last_sequence()
    second = await apply(server, DECLARATION)
    assert (second["status"], second["changed"], second["servers"]) == ("unchanged", False, [])
    assert second["counts"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 2}
    assert await runtime.repository.last_sequence() == sequence


async def test_apply_updates_a_changed_channel_and_a_changed_secret(server: InProcess) -> None:
    await deploy(server, "shop/orders.py", orders(1))
    await apply(server, DECLARATION)
    moved = DECLARATION.replace("/orders/{id}", "/v2/orders/{id:int}")
    answer = await apply(server, moved)
    assert [(c["action"], c["name"], c["fields"]) for c in answer["changes"]] == [
        ("unchanged", "partners", []),
        ("update", "get-order", ["path"]),
    ]
    assert (await server.client.get("/orders/42", auth=("acme", SECRET))).status_code == 404
    assert (await server.client.get("/v2/orders/42", auth=("acme", SECRET))).status_code == 200
    channels = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert [(c["name"], c["path"]) for c in channels] == [("get-order", "/v2/orders/{id:int}")]

    body = {"file": "splice.toml", "text": moved, "secrets": {"PARTNERS_PASSWORD": "a new one"}}
    rotated = (await server.admin.post("/splice/admin/apply", json=body)).json()
    assert changes(rotated) == [("update", "security", "partners")]
    assert rotated["changes"][0]["fields"] == ["password"]
    assert "a new one" not in str(rotated)
    assert (await server.client.get("/v2/orders/42", auth=("acme", SECRET))).status_code == 401
    assert (await server.client.get("/v2/orders/42", auth=("acme", "a new one"))).status_code == 200


async def test_dry_run_and_prune(server: InProcess) -> None:
    await server.admin.post(
        "/splice/admin/channels", json={"name": "by-hand", "path": "/by-hand", "service": "orders.get"}
    )
    dry = await apply(server, DECLARATION, dry_run=True)
    assert (dry["status"], dry["changed"]) == ("dry_run", True)
    assert changes(dry) == [("create", "security", "partners"), ("create", "channel", "get-order")]
    listed = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert [c["name"] for c in listed] == ["by-hand"]
    assert (await server.admin.get("/splice/admin/security")).json()["security"] == []

    kept = await apply(server, DECLARATION)
    assert ("delete", "channel", "by-hand") not in changes(kept)
    assert {c["name"] for c in (await server.admin.get("/splice/admin/channels")).json()["channels"]} == {
        "by-hand",
        "get-order",
    }
    assert any("no service named 'orders.get'" in w for w in kept["warnings"])

    pruned = await apply(server, DECLARATION, prune=True)
    assert changes(pruned) == [("delete", "channel", "by-hand")]
    assert [c["name"] for c in (await server.admin.get("/splice/admin/channels")).json()["channels"]] == ["get-order"]

    emptied = await apply(server, "", prune=True)
    assert changes(emptied) == [("delete", "channel", "get-order"), ("delete", "security", "partners")]
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []
    assert (await server.admin.get("/splice/admin/security")).json()["security"] == []


async def test_apply_refusals_name_file_line_and_field(server: InProcess) -> None:
    broken = await apply(server, DECLARATION.replace('path = "/orders/{id}"', 'path = "orders"'), status=422)
    assert broken["error"]["code"] == "invalid_declaration"
    (problem,) = broken["error"]["problems"]
    assert (problem["file"], problem["line"], problem["field"]) == ("splice.toml", 9, "channels[0].path")
    assert broken["error"]["message"].startswith("splice.toml:9: channels[0].path: a channel path must start with '/'")

    syntax = await apply(server, "[[channels]\n", status=422)
    assert syntax["error"]["problems"][0]["line"] == 1

    answer = await server.admin.post("/splice/admin/apply", json={"text": DECLARATION, "secrets": {}})
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == (
        "splice.toml:5: security[0].password_env: PARTNERS_PASSWORD is not set in the secrets sent with the call"
    )
    for body in ({}, {"text": 1}, {"text": "", "secrets": {"A": 1}}, {"text": "", "prune": "yes"}):
        assert (await server.admin.post("/splice/admin/apply", json=body)).status_code == 400, body
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []


async def test_runtime_applies_a_file_with_secrets_from_its_environment(server: InProcess, tmp_path: Path) -> None:
    runtime = runtime_of(server)
    file = tmp_path / "pickup" / "shop.splice.toml"
    file.parent.mkdir()
    file.write_text(DECLARATION, encoding="utf-8")

    runtime.environ = {}
    with pytest.raises(DeclarationError) as caught:
        await runtime.apply_config(file)
    assert str(caught.value) == (
        f"{file}:5: security[0].password_env: PARTNERS_PASSWORD is not set in the environment of server server1"
    )

    runtime.environ = {"PARTNERS_PASSWORD": SECRET}
    first = await runtime.apply_config(file)
    assert first["changed"] is True
    assert (await runtime.apply_config(file))["changed"] is False
    await deploy(server, "shop/orders.py", orders(5))
    assert (await server.client.get("/orders/1", auth=("acme", SECRET))).json()["version"] == 5
    assert "PARTNERS_PASSWORD" not in repr(runtime)
