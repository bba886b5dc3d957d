"""``GET /splice/openapi.json``: the channels' OpenAPI document, against a real server in-process; how one
channel becomes parameters, a body and answers (table-driven, from real service classes); ``[openapi] public``."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import schemathesis
from pydantic import BaseModel

from splice.server import Service
from splice.server.channels.routing import Route
from splice.server.config import load_settings
from splice.server.core.errors import ConfigError
from splice.server.core.store import ServiceInfo, describe
from splice.server.http.user_openapi import component_prefix, document
from tests.conftest import InProcess, free_port, in_process

SHOP = textwrap.dedent(
    '''
    from datetime import datetime
    from typing import Annotated, Literal
    from uuid import UUID

    from pydantic import BaseModel, Field

    from splice.server import Service


    class Item(BaseModel):
        sku: str
        qty: Annotated[int, Field(gt=0)]


    class CreateOrder(Service):
        """Create an order.

        Every item needs a positive quantity.
        """

        name = "shop.create-order"

        class Input(BaseModel):
            customer: UUID
            items: list[Item]
            channel: Literal["web", "phone"] = "web"
            due: datetime | None = None

        class Output(BaseModel):
            order: int
            lines: int

        def handle(self):
            self.response.payload = {"order": 7, "lines": len(self.request.input.items), "kept": False}


    class GetItem(Service):
        name = "shop.get-item"

        class Input:
            id: int
            name: str
            verbose: bool = False

        def handle(self):
            self.response.payload = dict(self.request.input)


    class Echo(Service):
        name = "shop.echo"

        def handle(self):
            self.response.payload = self.request.payload
    '''
)

sqlite = pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
"""The document reads nothing of the ODB but channels: one backend is enough."""


async def setup_shop(server: InProcess) -> None:
    deployed = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": "shop.py", "source": SHOP}]})
    assert deployed.status_code == 200, deployed.text
    secured = await server.admin.post("/splice/admin/security", json={"name": "robots", "kind": "apikey", "key": "k"})
    assert secured.status_code == 201, secured.text
    for name, path, service, methods, security in [
        ("create-order", "/orders", "shop.create-order", ["POST"], None),
        ("get-item", "/items/{id:int}", "shop.get-item", ["GET"], None),
        ("echo", "/echo", "shop.echo", ["GET", "POST"], "robots"),
        ("ghost", "/ghost/{rest:path}", "shop.not-deployed", ["DELETE"], None),
    ]:
        body = {"name": name, "path": path, "service": service, "methods": methods, "security": security}
        created = await server.admin.post("/splice/admin/channels", json=body)
        assert created.status_code == 201, created.text


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


@sqlite
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token", "Basic YWRtaW46YWRtaW4="])
async def test_the_document_needs_the_admin_token(server: InProcess, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await server.client.get("/splice/openapi.json", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthorized"
    assert answer.json()["cid"] == answer.headers["x-splice-cid"]
    assert (await server.admin.get("/splice/openapi.json")).status_code == 200


@sqlite
async def test_every_channel_with_its_services_schemas(server: InProcess) -> None:
    empty = (await server.admin.get("/splice/openapi.json")).json()
    assert empty["paths"] == {}
    await setup_shop(server)
    doc = (await server.admin.get("/splice/openapi.json")).json()

    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()  # against the OpenAPI 3.1 schema
    assert doc["servers"] == [{"url": server.runtime.server.url}]  # type: ignore[attr-defined]
    assert doc["info"]["version"] != empty["info"]["version"]
    assert sorted(doc["paths"]) == ["/echo", "/ghost/{rest}", "/items/{id}", "/orders"]
    assert sorted(doc["paths"]["/echo"]) == ["get", "post"]
    schemas = doc["components"]["schemas"]
    for ref in set(references(doc)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[-1] in schemas, ref

    create = doc["paths"]["/orders"]["post"]
    assert create["summary"] == "Create an order."
    assert create["tags"] == ["shop.create-order"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert create["requestBody"]["required"] is True
    assert body["required"] == ["customer", "items"]
    assert body["properties"]["items"]["items"] == {"$ref": "#/components/schemas/shop.create-order.Item"}
    assert body["properties"]["customer"]["format"] == "uuid"
    assert body["properties"]["channel"]["enum"] == ["web", "phone"]
    assert schemas["shop.create-order.Item"]["properties"]["qty"] == {
        "exclusiveMinimum": 0,
        "title": "Qty",
        "type": "integer",
    }
    output = create["responses"]["200"]["content"]["application/json"]["schema"]
    assert output["required"] == ["order", "lines"]
    assert "400" in create["responses"]

    get_item = doc["paths"]["/items/{id}"]["get"]
    assert "requestBody" not in get_item
    assert [(p["name"], p["in"], p["required"], p["schema"]["type"]) for p in get_item["parameters"]] == [
        ("id", "path", True, "integer"),
        ("name", "query", True, "string"),
        ("verbose", "query", False, "boolean"),
    ]

    echo = doc["paths"]["/echo"]
    assert echo["post"]["security"] == [{"robots": []}]
    assert doc["components"]["securitySchemes"] == {"robots": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    assert "400" not in echo["get"]["responses"]
    assert echo["post"]["requestBody"]["required"] is False

    ghost = doc["paths"]["/ghost/{rest}"]["delete"]
    assert "not deployed" in ghost["description"]
    assert ghost["parameters"] == [{"name": "rest", "in": "path", "required": True, "schema": {"type": "string"}}]


@sqlite
async def test_calls_as_the_document_describes_them(server: InProcess) -> None:
    await setup_shop(server)
    customer = "12345678-1234-5678-1234-567812345678"
    good = {"customer": customer, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}
    answer = await server.client.post("/orders", json=good)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"order": 7, "lines": 2}  # the Output model shapes the answer: "kept" is not declared

    bad = {"customer": "nobody", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "many"}, {"sku": "c", "qty": 0}]}
    answer = await server.client.post("/orders", json=bad)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert [(f["field"], f["where"]) for f in error["fields"]] == [
        ("customer", "payload"),
        ("items[1].qty", "payload"),
        ("items[2].qty", "payload"),
    ]
    assert "items[1].qty: expected int, got string" in error["message"]

    answer = await server.client.get("/items/5", params={"name": "hat", "verbose": "yes"})
    assert answer.json() == {"id": 5, "name": "hat", "verbose": True}


def info(cls: type[Service]) -> ServiceInfo:
    return describe(cls, __name__, "test.py", 1, vars(sys.modules[__name__]))


class Plain(Service):
    name = "t.plain"

    class Input:
        id: int
        tags: list[str]
        note: str | None = None

    def handle(self) -> None:
        pass


class Bare(Service):
    name = "t.bare"

    def handle(self) -> None:
        pass


def operation(pattern: str, method: str, cls: type[Service]) -> dict[str, Any]:
    service = info(cls)
    channel = Route("c", pattern, frozenset({method}), service.name)
    doc = document([channel], {service.name: service}, {}, ["http://x"], "t")
    (path,) = doc["paths"].values()
    return dict(path[method.lower()])


@pytest.mark.parametrize(
    ("pattern", "method", "cls", "parameters", "body"),
    [
        # GET: scalars go to the query, what text cannot carry stays in a body
        ("/p/{id:int}", "GET", Plain, [("id", "path", True), ("note", "query", False)], (["tags"], ["tags"])),
        ("/p", "DELETE", Plain, [("id", "query", True), ("note", "query", False)], (["tags"], ["tags"])),
        # POST: the body, less what the path gives
        ("/p/{id}", "POST", Plain, [("id", "path", True)], (["tags", "note"], ["tags"])),
        ("/p", "PUT", Plain, [], (["id", "tags", "note"], ["id", "tags"])),
        # a path parameter the service does not declare is still described, by its kind
        ("/p/{other:int}/{rest:path}", "GET", Bare, [("other", "path", True), ("rest", "path", True)], None),
        ("/p", "GET", Bare, [], None),
    ],
)
def test_a_channel_as_parameters_and_body(
    pattern: str,
    method: str,
    cls: type[Service],
    parameters: list[tuple[str, str, bool]],
    body: tuple[list[str], list[str]] | None,
) -> None:
    op = operation(pattern, method, cls)
    assert [(p["name"], p["in"], p["required"]) for p in op.get("parameters", [])] == parameters
    if body is None:
        assert "requestBody" not in op
    else:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert (list(schema["properties"]), schema.get("required", [])) == body
        assert op["requestBody"]["required"] is bool(body[1])


def test_post_without_input_takes_any_payload() -> None:
    op = operation("/p", "POST", Bare)
    assert op["requestBody"]["required"] is False
    assert op["responses"]["200"]["description"].startswith("The service's payload")


@pytest.mark.parametrize(
    ("service", "prefix"),
    [("shop.get-item", "shop.get-item."), ("a/b:c", "a_b_c."), ("x_y", "x_y.")],
)
def test_component_prefix(service: str, prefix: str) -> None:
    assert component_prefix(service) == prefix


class Dated(Service):
    name = "t.dated"

    class Input(BaseModel):
        since: datetime = datetime(2026, 1, 1, tzinfo=UTC)
        ref: UUID = UUID(int=1)

    def handle(self) -> None:
        pass


def test_the_document_is_plain_json() -> None:
    op = operation("/p", "GET", Dated)
    text = json.dumps(op)  # no default=: defaults are written as JSON already
    assert '"default": "2026-01-01T00:00:00Z"' in text
    assert [p["schema"]["format"] for p in op["parameters"]] == ["date-time", "uuid"]


def write_config(directory: Path, extra: str) -> Path:
    directory.mkdir()
    (directory / "cluster.toml").write_text(
        f'[cluster]\nname = "t"\n\n[[servers]]\nname = "server1"\nport = {free_port()}\n\n{extra}'
    )
    return directory


@pytest.mark.parametrize(
    ("extra", "public", "problem"),
    [
        ("", False, None),
        ("[openapi]\npublic = true\n", True, None),
        ("[openapi]\npublic = false\n", False, None),
        ("[openapi]\npublic = 'yes'\n", None, "openapi.public: must be bool, got 'yes'"),
        ("[openapi]\npublik = true\n", None, "unknown key 'publik' in [openapi]; did you mean 'public'?"),
    ],
)
def test_the_openapi_section_of_cluster_toml(
    tmp_path: Path, extra: str, public: bool | None, problem: str | None
) -> None:
    directory = write_config(tmp_path / "c", extra)
    if problem is None:
        assert load_settings(directory).openapi_public is public
    else:
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load_settings(directory)


@pytest.fixture
async def public_server(tmp_path: Path) -> AsyncIterator[InProcess]:
    """A real server whose cluster.toml makes the channels' document public."""
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    odb = f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}"
    await asyncio.to_thread(quickstart_create, directory, free_port(), odb, None, 1, None, False)
    with (directory / "cluster.toml").open("a") as config:
        config.write("\n[openapi]\npublic = true\n")
    async with in_process(directory) as made:
        yield made


async def test_a_public_document_needs_no_token_and_the_admin_api_still_does(public_server: InProcess) -> None:
    await setup_shop(public_server)
    answer = await public_server.client.get("/splice/openapi.json")
    assert answer.status_code == 200, answer.text
    assert "/orders" in answer.json()["paths"]
    assert (await public_server.client.get("/splice/admin/services")).status_code == 401
