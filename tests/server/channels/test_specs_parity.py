"""The admin API and a declaration file (``splice apply``) take the same channel and security specs.

Each spec, good or bad, goes to ``POST /splice/admin/channels`` (or ``/security``) and, as a ``splice.toml``
table, to ``POST /splice/admin/apply``: both must accept it or both refuse it, naming the same field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import InProcess

SECRET = "s3cret-Pa55"
CHANNEL = {"name": "get-order", "path": "/orders/{id}", "service": "orders.get"}
BASIC = {"name": "partners", "kind": "basic", "username": "acme"}
APIKEY = {"name": "robots", "kind": "apikey"}

# (section, the spec, the field both must name, or None when both accept it)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("channels", CHANNEL, None),
    ("channels", {**CHANNEL, "methods": ["get", "POST"]}, None),
    ("channels", {**CHANNEL, "path": "/files/{rest:path}"}, None),
    ("channels", {**CHANNEL, "path": "/orders/{id:int}/lines/{line}"}, None),
    ("channels", {**CHANNEL, "path": "orders"}, "path"),
    ("channels", {**CHANNEL, "path": "/splice/orders"}, "path"),
    ("channels", {**CHANNEL, "path": "/orders/{id}/{id}"}, "path"),
    ("channels", {**CHANNEL, "path": "/orders/{id:float}"}, "path"),
    ("channels", {**CHANNEL, "path": 5}, "path"),
    ("channels", {**CHANNEL, "name": ""}, "name"),
    ("channels", {**CHANNEL, "name": "get order"}, "name"),
    ("channels", {**CHANNEL, "service": "orders get"}, "service"),
    ("channels", {**CHANNEL, "methods": []}, "methods"),
    ("channels", {**CHANNEL, "methods": ["FETCH"]}, "methods"),
    ("channels", {**CHANNEL, "methods": "GET"}, "methods"),
    ("channels", {**CHANNEL, "security": "no such"}, "security"),
    ("channels", {**CHANNEL, "servce": "orders.get"}, "servce"),
    ("channels", {"name": "get-order", "path": "/orders"}, "service"),
    ("security", BASIC, None),
    ("security", APIKEY, None),
    ("security", {**APIKEY, "header": "X-Robot-Key"}, None),
    ("security", {**BASIC, "username": "a:b"}, "username"),
    ("security", {**BASIC, "username": ""}, "username"),
    ("security", {"name": "partners", "kind": "basic"}, "username"),
    ("security", {**BASIC, "header": "X-Key"}, "header"),
    ("security", {**APIKEY, "header": "Bad Header"}, "header"),
    ("security", {**APIKEY, "username": "acme"}, "username"),
    ("security", {**BASIC, "kind": "oauth"}, "kind"),
    ("security", {"name": "partners", "username": "acme"}, "kind"),
    ("security", {**BASIC, "name": "bad name"}, "name"),
]


def toml_table(section: str, spec: dict[str, Any]) -> str:
    """The spec as a ``[[section]]`` table; a security definition names its secret's variable."""
    fields = dict(spec)
    if section == "security":
        fields["key_env" if spec.get("kind") == "apikey" else "password_env"] = "SPEC_SECRET"
    lines = [f"{key} = {json.dumps(value)}" for key, value in fields.items()]  # JSON strings and arrays are TOML
    return f"[[{section}]]\n" + "\n".join(lines) + "\n"


def api_body(section: str, spec: dict[str, Any]) -> dict[str, Any]:
    if section == "channels":
        return spec
    return {**spec, "key" if spec.get("kind") == "apikey" else "password": SECRET}


async def through_api(server: InProcess, section: str, spec: dict[str, Any]) -> set[str] | None:
    """The fields the admin API refuses, or ``None`` if it created the object (deleted again here)."""
    answer = await server.admin.post(f"/splice/admin/{section}", json=api_body(section, spec))
    if answer.status_code == 201:
        deleted = await server.admin.delete(f"/splice/admin/{section}/{spec['name']}")
        assert deleted.status_code == 200, deleted.text
        return None
    error = answer.json()["error"]
    assert answer.status_code in (400, 404), answer.text
    if answer.status_code == 404:  # a channel naming a security definition that does not exist
        return {"security"} if "security definition" in error["message"] else {"?"}
    return {p["field"] for p in error["problems"]}


async def through_apply(server: InProcess, section: str, spec: dict[str, Any]) -> set[str] | None:
    """The fields ``splice apply`` refuses (without ``channels[0].``), or ``None`` if it created the object."""
    body = {"file": "splice.toml", "text": toml_table(section, spec), "secrets": {"SPEC_SECRET": SECRET}}
    answer = await server.admin.post("/splice/admin/apply", json=body)
    if answer.status_code == 200:
        emptied = await server.admin.post("/splice/admin/apply", json={"text": "", "prune": True})
        assert emptied.status_code == 200, emptied.text
        return None
    assert answer.status_code == 422, answer.text
    return {p["field"].split(".", 1)[1] for p in answer.json()["error"]["problems"]}


@pytest.mark.parametrize("section", ["channels", "security"])
async def test_the_api_and_a_declaration_accept_and_refuse_the_same_specs(server: InProcess, section: str) -> None:
    cases = [(spec, field) for kind, spec, field in CASES if kind == section]
    for spec, field in cases:
        by_api = await through_api(server, section, spec)
        by_file = await through_apply(server, section, spec)
        expected = None if field is None else {field}
        assert (by_api, by_file) == (expected, expected), (spec, by_api, by_file)
    assert (await server.admin.get(f"/splice/admin/{section}")).json()[section] == []
