"""The admin API and REST channels of one server, in-process, against every ODB backend.

Covers the token check on every admin route (taken from the server's own OpenAPI document), ping and
the correlation id header, channels and their security definitions, input validation over a channel,
how service errors become HTTP answers, and the deploy refusals that name the offending paths.
"""

from __future__ import annotations

import base64
import re
import textwrap
from typing import Any

import httpx
import pytest

from splice.server.http.admin import routes
from tests.conftest import InProcess

CID = "x-splice-cid"
CID_PATTERN = re.compile(r"^[0-9a-f]{24}$")

SHOP = textwrap.dedent(
    '''
    from splice.server import HTTPError, Service


    class GetItem(Service):
        """One item; the id comes from the path, the name from the query or the body."""

        name = "shop.get-item"

        class Input:
            id: int
            name: str

        def handle(self):
            self.response.payload = {"id": self.request.input["id"], "name": self.request.input["name"]}


    class Echo(Service):
        name = "shop.echo"

        async def handle(self):
            self.response.payload = {"payload": self.request.payload, "cid": self.cid}


    class Broken(Service):
        name = "shop.broken"

        def handle(self):
            raise ValueError("the warehouse is on fire")


    class Missing(Service):
        name = "shop.missing"

        async def handle(self):
            raise HTTPError(404, "no such order: 42")
    '''
)


def check_cid(answer: httpx.Response) -> str:
    """The answer's correlation id; JSON error bodies must repeat it."""
    cid = answer.headers.get(CID)
    assert cid is not None, f"{answer.request.method} {answer.request.url} answered without {CID}"
    assert CID_PATTERN.match(cid), cid
    if answer.headers.get("content-type", "").startswith("application/json") and answer.request.method != "HEAD":
        body = answer.json()
        if isinstance(body, dict) and "error" in body:
            assert body["cid"] == cid
    return cid


async def deploy(server: InProcess, *modules: tuple[str, str]) -> httpx.Response:
    body = {"modules": [{"path": path, "source": source} for path, source in modules]}
    return await server.admin.post("/splice/admin/deploy", json=body)


async def create_channel(server: InProcess, name: str, path: str, service: str, **extra: Any) -> httpx.Response:
    return await server.admin.post(
        "/splice/admin/channels", json={"name": name, "path": path, "service": service, **extra}
    )


async def openapi_operations(server: InProcess) -> list[tuple[str, str]]:
    answer = await server.admin.get("/splice/admin/openapi.json")
    assert answer.status_code == 200, answer.text
    return [
        (method.upper(), path)
        for path, operations in answer.json()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def concrete(path: str) -> str:
    return path.replace("{path}", "shop/orders.py").replace("{name}", "some-name")


# -- authentication, ping, correlation ids ----------------------------------------------------------------------


WRONG_CREDENTIALS = [
    None,
    "Bearer not-the-token",
    "Bearer ",
    "Bearer",
    "Basic YWRtaW46YWRtaW4=",
    "not-the-token",
]


@pytest.mark.parametrize("authorization", WRONG_CREDENTIALS)
async def test_every_admin_route_refuses_missing_or_wrong_token(server: InProcess, authorization: str | None) -> None:
    operations = await openapi_operations(server)
    assert len(operations) >= 15
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in operations:
        answer = await server.client.request(method, concrete(path), headers=headers, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]["code"] == "unauthorized"
        check_cid(answer)
    # The token of the cluster is still refused in any other scheme, and accepted in any case of "Bearer".
    token = server.admin.headers["Authorization"].split(" ", 1)[1]
    assert (await server.client.get("/splice/admin/server", headers={"Authorization": token})).status_code == 401
    accepted = await server.client.get("/splice/admin/server", headers={"Authorization": f"bearer {token}"})
    assert accepted.status_code == 200, accepted.text


async def test_openapi_document_needs_the_token(server: InProcess) -> None:
    assert (await server.client.get("/splice/admin/openapi.json")).status_code == 401
    document = (await server.admin.get("/splice/admin/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


async def test_openapi_document_lists_every_admin_route(server: InProcess) -> None:
    documented = set(await openapi_operations(server))
    served = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in routes(server.runtime)  # type: ignore[arg-type]
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served
    # And every documented operation is really served: none answers "no such endpoint".
    for method, path in sorted(documented):
        body = {"modules": []} if path.endswith("/deploy") else {}
        answer = await server.admin.request(method, concrete(path), json=body)
        assert answer.status_code not in (401, 405, 500), (method, path, answer.text)
        assert "no such endpoint" not in answer.text, (method, path)
        check_cid(answer)


async def test_ping_answers_without_auth_with_a_fresh_cid(server: InProcess) -> None:
    first = await server.client.get("/splice/ping")
    second = await server.client.get("/splice/ping")
    for answer in (first, second):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        assert set(body) == {"status", "server", "cid", "threads"}
        assert body["status"] == "ok"
        assert body["server"] == "server1"
        assert body["cid"] == check_cid(answer)
    assert first.json()["cid"] != second.json()["cid"]


async def test_every_kind_of_answer_carries_a_cid(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "echo", "/echo", "shop.echo", methods=["POST"])).status_code == 201
    answers = [
        await server.client.get("/splice/ping"),
        await server.client.get("/splice/admin/server"),
        await server.admin.get("/splice/admin/server"),
        await server.admin.get("/splice/admin/no-such-endpoint"),
        await server.admin.get("/splice/admin/deploy"),
        await server.admin.post("/splice/admin/deploy", content=b"{not json"),
        await server.admin.post("/splice/admin/invoke", json={"service": "shop.echo", "payload": 1}),
        await server.client.get("/splice/no-such-thing"),
        await server.client.get("/no/channel/here"),
        await server.client.get("/echo"),
        await server.client.post("/echo", json={"a": 1}),
        await server.client.post("/echo", content=b"{broken", headers={"content-type": "application/json"}),
    ]
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 401, 200, 404, 405, 400, 200, 404, 404, 405, 200, 400]
    cids = [check_cid(a) for a in answers]
    assert len(set(cids)) == len(cids)
    # The service sees the same cid the caller gets in the header.
    echoed = answers[10]
    assert echoed.json() == {"payload": {"a": 1}, "cid": echoed.headers[CID]}


# -- channels -----------------------------------------------------------------------------------------------


async def test_channel_create_list_delete(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    created = await create_channel(server, "get-item", "/items/{id}", "shop.get-item", methods=["get", "post"])
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": "get-item",
        "kind": "rest",
        "path": "/items/{id}",
        "methods": ["GET", "POST"],
        "service": "shop.get-item",
        "security": None,
        "warning": None,
        "servers": [{"server": "server1", "status": "deployed", "sequence": created.json()["servers"][0]["sequence"]}],
    }
    listed = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert [(c["name"], c["path"], c["methods"], c["service"], c["security"]) for c in listed] == [
        ("get-item", "/items/{id}", ["GET", "POST"], "shop.get-item", None)
    ]
    answer = await server.client.get("/items/7", params={"name": "hat"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": 7, "name": "hat"}

    deleted = await server.admin.delete("/splice/admin/channels/get-item")
    assert deleted.status_code == 200
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []
    gone = await server.client.get("/items/7", params={"name": "hat"})
    assert gone.status_code == 404
    assert "no channel" in gone.json()["error"]["message"]
    again = await server.admin.delete("/splice/admin/channels/get-item")
    assert again.status_code == 404
    assert "get-item" in again.json()["error"]["message"]


async def test_channel_for_a_service_not_yet_deployed_warns(server: InProcess) -> None:
    created = await create_channel(server, "later", "/later", "shop.echo")
    assert created.status_code == 201
    assert "shop.echo" in created.json()["warning"]
    answer = await server.client.get("/later")
    assert answer.status_code == 404
    assert "shop.echo" in answer.json()["error"]["message"]
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await server.client.get("/later")).status_code == 200


async def test_duplicate_channel_name_is_a_conflict(server: InProcess) -> None:
    assert (await create_channel(server, "orders", "/orders", "shop.echo")).status_code == 201
    duplicate = await create_channel(server, "orders", "/other", "shop.echo")
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    assert "orders" in duplicate.json()["error"]["message"]
    check_cid(duplicate)
    listed = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert [(c["name"], c["path"]) for c in listed] == [("orders", "/orders")]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("orders/{id}", "must start with '/'"),
        ("/orders/{id", "bad parameter"),
        ("/orders/{1d}", "bad parameter"),
        ("/orders/{id:float}", "bad parameter"),
        ("/orders/{id}/{id}", "appears twice"),
        ("/splice/orders", "Splice's own"),
    ],
)
async def test_bad_channel_path_is_refused_clearly(server: InProcess, path: str, fragment: str) -> None:
    answer = await create_channel(server, "bad", path, "shop.echo")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "bad_request"
    assert fragment in error["message"]
    assert path in error["message"]
    check_cid(answer)
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []


async def test_unknown_method_is_refused_clearly(server: InProcess) -> None:
    answer = await create_channel(server, "bad", "/orders", "shop.echo", methods=["GET", "FETCH"])
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "unknown HTTP method FETCH" in message
    assert "GET" in message  # the allowed methods are listed
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []


async def test_channel_with_unknown_security_is_not_found(server: InProcess) -> None:
    answer = await create_channel(server, "secure", "/secure", "shop.echo", security="no-such-definition")
    assert answer.status_code == 404
    assert "no-such-definition" in answer.json()["error"]["message"]
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []


# -- security definitions -------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_security_definitions_never_echo_their_secret(server: InProcess) -> None:
    created = await server.admin.post(
        "/splice/admin/security",
        json={"name": "partners", "kind": "basic", "username": "acme", "password": "s3cret-Pa55"},
    )
    assert created.status_code == 201, created.text
    assert created.json() | {"servers": None} == {
        "name": "partners",
        "kind": "basic",
        "username": "acme",
        "header": None,
        "servers": None,
    }
    assert "s3cret-Pa55" not in created.text
    created = await server.admin.post(
        "/splice/admin/security", json={"name": "robots", "kind": "apikey", "key": "k3y-0f-r0b0ts"}
    )
    assert created.status_code == 201, created.text
    assert created.json() | {"servers": None} == {
        "name": "robots",
        "kind": "apikey",
        "username": None,
        "header": "X-API-Key",
        "servers": None,
    }

    listed = await server.admin.get("/splice/admin/security")
    assert listed.json() == {
        "security": [
            {"name": "partners", "kind": "basic", "username": "acme", "header": None},
            {"name": "robots", "kind": "apikey", "username": None, "header": "X-API-Key"},
        ]
    }
    for secret in ("s3cret-Pa55", "k3y-0f-r0b0ts", "scrypt"):
        assert secret not in listed.text

    duplicate = await server.admin.post(
        "/splice/admin/security", json={"name": "robots", "kind": "apikey", "key": "other"}
    )
    assert duplicate.status_code == 409
    unknown_kind = await server.admin.post("/splice/admin/security", json={"name": "x", "kind": "oauth", "key": "k"})
    assert unknown_kind.status_code == 400
    assert "basic, apikey" in unknown_kind.json()["error"]["message"]
    no_secret = await server.admin.post("/splice/admin/security", json={"name": "x", "kind": "basic", "username": "u"})
    assert no_secret.status_code == 400
    assert "password" in no_secret.json()["error"]["message"]


async def test_basic_secured_channel(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    definition = {"name": "partners", "kind": "basic", "username": "acme", "password": "s3cret:Pa55"}
    assert (await server.admin.post("/splice/admin/security", json=definition)).status_code == 201
    created = await create_channel(server, "echo", "/echo", "shop.echo", methods=["POST"], security="partners")
    assert created.status_code == 201
    listed = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert listed[0]["security"] == "partners"

    refused = [
        await server.client.post("/echo", json={"a": 1}),
        await server.client.post("/echo", json={"a": 1}, headers=basic("acme", "wrong")),
        await server.client.post("/echo", json={"a": 1}, headers=basic("other", "s3cret:Pa55")),
        await server.client.post("/echo", json={"a": 1}, headers={"Authorization": "Basic !!!not-base64"}),
        await server.client.post("/echo", json={"a": 1}, headers={"Authorization": "Bearer s3cret:Pa55"}),
    ]
    for answer in refused:
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == 'Basic realm="splice"'
        assert answer.json()["error"]["code"] == "unauthorized"
        check_cid(answer)

    for _ in range(2):  # the second time the verified credentials come from the verifier's memory
        accepted = await server.client.post("/echo", json={"a": 1}, headers=basic("acme", "s3cret:Pa55"))
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["payload"] == {"a": 1}
    assert (await server.client.post("/echo", json={"a": 1}, headers=basic("acme", "wrong"))).status_code == 401

    in_use = await server.admin.delete("/splice/admin/security/partners")
    assert in_use.status_code == 409
    assert "echo" in in_use.json()["error"]["message"]


async def test_basic_secured_channel_with_non_ascii_user_names(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    definition = {"name": "partners", "kind": "basic", "username": "José", "password": "pässwörd"}
    assert (await server.admin.post("/splice/admin/security", json=definition)).status_code == 201
    assert (await create_channel(server, "echo", "/echo", "shop.echo", security="partners")).status_code == 201
    for headers in (basic("Zoë", "pässwörd"), basic("José", "pw"), basic("Jose", "pässwörd")):
        answer = await server.client.get("/echo", headers=headers)
        assert answer.status_code == 401, answer.text
        check_cid(answer)
    answer = await server.client.get("/echo", headers=basic("José", "pässwörd"))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("header", [None, "X-Partner-Key"])
async def test_apikey_secured_channel(server: InProcess, header: str | None) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    definition = {"name": "robots", "kind": "apikey", "key": "k3y-0f-r0b0ts"}
    if header:
        definition["header"] = header
    assert (await server.admin.post("/splice/admin/security", json=definition)).status_code == 201
    assert (await create_channel(server, "echo", "/echo", "shop.echo", security="robots")).status_code == 201
    name = header or "X-API-Key"

    refused = [
        await server.client.get("/echo"),
        await server.client.get("/echo", headers={name: "wrong"}),
        await server.client.get("/echo", headers={name: ""}),
        await server.client.get("/echo", headers={"Authorization": "Bearer k3y-0f-r0b0ts"}),
    ]
    if header:  # the key in the default header does not count when another header is configured
        refused.append(await server.client.get("/echo", headers={"X-API-Key": "k3y-0f-r0b0ts"}))
    for answer in refused:
        assert answer.status_code == 401, answer.text
        assert "www-authenticate" not in answer.headers
        check_cid(answer)

    accepted = await server.client.get("/echo", headers={name.lower(): "k3y-0f-r0b0ts"})
    assert accepted.status_code == 200, accepted.text
    check_cid(accepted)

    # Deleting the channel first frees the definition.
    assert (await server.admin.delete("/splice/admin/channels/echo")).status_code == 200
    assert (await server.admin.delete("/splice/admin/security/robots")).status_code == 200
    assert (await server.admin.get("/splice/admin/security")).json() == {"security": []}
    missing = await server.admin.delete("/splice/admin/security/robots")
    assert missing.status_code == 404


# -- calling services -------------------------------------------------------------------------------------------


async def test_bad_input_over_a_channel_lists_every_field(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    created = await create_channel(server, "item", "/items/{id}", "shop.get-item", methods=["GET", "POST"])
    assert created.status_code == 201

    answer = await server.client.get("/items/abc")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert sorted((f["field"], f["where"]) for f in error["fields"]) == [("id", "path"), ("name", "payload")]
    assert "'abc'" in error["message"]
    assert "id:" in error["message"]
    assert "name: required field is missing" in error["message"]
    assert "shop.get-item" in error["message"]
    check_cid(answer)

    answer = await server.client.post("/items/1", json={"id": "one", "name": 5})
    assert answer.status_code == 400
    fields = {f["field"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert fields == {"id": "expected int, got string", "name": "expected str, got int"}

    answer = await server.client.post("/items/1", json=[1, 2])
    assert answer.status_code == 400
    assert "expected a JSON object" in answer.json()["error"]["message"]

    answer = await server.client.get("/items/12", params={"name": "hat"})
    assert answer.status_code == 200
    assert answer.json() == {"id": 12, "name": "hat"}


async def test_invoke_with_bad_input_lists_every_field(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    answer = await server.admin.post("/splice/admin/invoke", json={"service": "shop.get-item", "payload": {}})
    assert answer.status_code == 400
    assert sorted(f["field"] for f in answer.json()["error"]["fields"]) == ["id", "name"]
    check_cid(answer)


async def test_service_exception_is_500_naming_the_service(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "broken", "/broken", "shop.broken")).status_code == 201
    over_channel = await server.client.get("/broken")
    invoked = await server.admin.post("/splice/admin/invoke", json={"service": "shop.broken"})
    for answer in (over_channel, invoked):
        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert error["code"] == "service_failed"
        assert error["service"] == "shop.broken"
        assert "shop.broken" in error["message"]
        assert "ValueError: the warehouse is on fire" in error["message"]
        check_cid(answer)
    # The server still answers afterwards.
    assert (await server.admin.post("/splice/admin/invoke", json={"service": "shop.echo"})).status_code == 200


BROKEN_INIT = """
from splice.server import Service

class Fragile(Service):
    name = "fragile.init"

    def __init__(self):
        raise RuntimeError("cannot even start")

    def handle(self):
        pass
"""


async def test_a_service_whose_constructor_raises_is_a_500_naming_it(server: InProcess) -> None:
    assert (await deploy(server, ("fragile.py", BROKEN_INIT))).status_code == 200
    answer = await server.admin.post("/splice/admin/invoke", json={"service": "fragile.init"})
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "service_failed"
    assert "RuntimeError: cannot even start" in error["message"]
    check_cid(answer)


async def test_http_error_raised_by_a_service_sets_the_status(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "missing", "/orders/{id}", "shop.missing")).status_code == 201
    over_channel = await server.client.get("/orders/42")
    invoked = await server.admin.post("/splice/admin/invoke", json={"service": "shop.missing"})
    for answer in (over_channel, invoked):
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["code"] == "http_error"
        assert error["message"] == "no such order: 42"
        check_cid(answer)


async def test_invoke_of_unknown_service_is_404(server: InProcess) -> None:
    answer = await server.admin.post("/splice/admin/invoke", json={"service": "shop.nothing", "payload": {}})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "service_not_found"
    assert "shop.nothing" in answer.json()["error"]["message"]
    check_cid(answer)
    info = await server.admin.get("/splice/admin/services/shop.nothing")
    assert info.status_code == 404


async def test_invoke_needs_a_service_name(server: InProcess) -> None:
    for body in ({}, {"service": 5}):
        answer = await server.admin.post("/splice/admin/invoke", json=body)
        assert answer.status_code == 400
        assert "service" in answer.json()["error"]["message"]
    answer = await server.admin.post("/splice/admin/invoke", content=b"[1]")
    assert answer.status_code == 400
    assert "JSON object" in answer.json()["error"]["message"]


# -- deploy and undeploy ----------------------------------------------------------------------------------------


ONE = textwrap.dedent(
    """
    from splice.server import Service

    class Greet(Service):
        name = "{name}"

        def handle(self):
            self.response.payload = "{text}"
    """
)


async def service_names(server: InProcess) -> list[str]:
    return [s["name"] for s in (await server.admin.get("/splice/admin/services")).json()["services"]]


async def test_undeploy_removes_services(server: InProcess) -> None:
    # The remaining module shares the package "shop", so undeploying leaves no package behind.
    deployed = await deploy(
        server, ("shop/items.py", SHOP), ("shop/hello.py", ONE.format(name="greet.hello", text="hi"))
    )
    assert deployed.status_code == 200, deployed.text
    assert (await create_channel(server, "echo", "/echo", "shop.echo")).status_code == 201
    assert await service_names(server) == sorted(
        ["greet.hello", "shop.broken", "shop.echo", "shop.get-item", "shop.missing"]
    )

    answer = await server.admin.post("/splice/admin/undeploy", json={"paths": ["shop/items.py"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["paths"] == ["shop/items.py"]
    assert sorted(answer.json()["services"]) == ["shop.broken", "shop.echo", "shop.get-item", "shop.missing"]
    assert await service_names(server) == ["greet.hello"]
    modules = (await server.admin.get("/splice/admin/modules")).json()["modules"]
    assert [m["path"] for m in modules] == ["shop/hello.py"]
    assert (await server.admin.post("/splice/admin/invoke", json={"service": "shop.echo"})).status_code == 404
    assert (await server.client.get("/echo")).status_code == 404
    history = (await server.admin.get("/splice/admin/modules/shop/items.py/history")).json()["versions"]
    assert [v["action"] for v in history] == ["deploy", "undeploy"]

    again = await server.admin.post("/splice/admin/undeploy", json={"paths": ["shop/items.py"]})
    assert again.status_code == 404
    assert "shop/items.py" in again.json()["error"]["message"]
    invoked = await server.admin.post("/splice/admin/invoke", json={"service": "greet.hello"})
    assert invoked.json()["payload"] == "hi"


async def test_same_service_name_in_two_modules_of_one_deploy_is_refused(server: InProcess) -> None:
    answer = await deploy(
        server,
        ("first/a.py", ONE.format(name="dup.name", text="a")),
        ("second/b.py", ONE.format(name="dup.name", text="b")),
    )
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert "dup.name" in message
    assert "first/a.py" in message
    assert "second/b.py" in message
    assert await service_names(server) == []
    assert (await server.admin.get("/splice/admin/modules")).json()["modules"] == []


async def test_service_name_taken_by_a_deployed_module_is_refused(server: InProcess) -> None:
    assert (await deploy(server, ("first/a.py", ONE.format(name="dup.name", text="a")))).status_code == 200
    answer = await deploy(server, ("second/b.py", ONE.format(name="dup.name", text="b")))
    assert answer.status_code == 422, answer.text
    problems = answer.json()["error"]["problems"]
    assert [p["path"] for p in problems] == ["second/b.py"]
    assert "first/a.py" in problems[0]["message"]
    assert "dup.name" in problems[0]["message"]
    invoked = await server.admin.post("/splice/admin/invoke", json={"service": "dup.name"})
    assert invoked.json()["payload"] == "a"
    # Moving the service is one deploy of both files.
    moved = await deploy(
        server,
        ("first/a.py", ONE.format(name="other.name", text="a")),
        ("second/b.py", ONE.format(name="dup.name", text="b")),
    )
    assert moved.status_code == 200, moved.text
    invoked = await server.admin.post("/splice/admin/invoke", json={"service": "dup.name"})
    assert invoked.json()["payload"] == "b"


@pytest.mark.parametrize(
    ("path", "taken"),
    [("json.py", "json"), ("asyncio/helpers.py", "asyncio"), ("splice.py", "splice"), ("starlette/x.py", "starlette")],
)
async def test_module_shadowing_an_installed_module_is_refused(server: InProcess, path: str, taken: str) -> None:
    answer = await deploy(server, (path, ONE.format(name="shadow", text="x")))
    assert answer.status_code == 422, answer.text
    problems = answer.json()["error"]["problems"]
    assert [p["path"] for p in problems] == [path]
    assert f"shadow the installed module '{taken}'" in problems[0]["message"]
    assert await service_names(server) == []
    # Python's own module is untouched in this process.
    import json

    assert json.dumps({"a": 1}) == '{"a": 1}'


# -- answers when the request or the service misbehaves -----------------------------------------------------------


def real_client(server: InProcess) -> httpx.AsyncClient:
    """A client of the same app that, like a real server, turns an exception escaping the app into a bare 500."""
    from splice.server.http.app import build_app

    transport = httpx.ASGITransport(app=build_app(server.runtime), raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=str(server.admin.base_url), headers=server.admin.headers)


async def test_too_large_channel_body_is_413_with_cid(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "echo", "/echo", "shop.echo", methods=["POST"])).status_code == 201
    body = b"x" * (16 * 1024 * 1024 + 1)
    answer = await server.client.post("/echo", content=body, headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"
    check_cid(answer)


async def test_head_on_a_get_channel_answers_without_body(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "echo", "/echo", "shop.echo")).status_code == 201
    got = await server.client.get("/echo")
    head = await server.client.head("/echo")
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    check_cid(head)


async def test_deeply_nested_json_body_is_a_bad_request(server: InProcess) -> None:
    assert (await deploy(server, ("shop/items.py", SHOP))).status_code == 200
    assert (await create_channel(server, "echo", "/echo", "shop.echo", methods=["POST"])).status_code == 201
    nested = b"[" * 100_000
    async with real_client(server) as client:
        to_admin = await client.post("/splice/admin/invoke", content=nested)
        to_channel = await client.post("/echo", content=nested, headers={"content-type": "application/json"})
    for answer in (to_admin, to_channel):
        assert answer.status_code == 400, answer.text
        assert "not valid JSON" in answer.json()["error"]["message"]
        check_cid(answer)


async def test_service_response_header_that_cannot_be_sent_is_a_json_500(server: InProcess) -> None:
    source = SHOP + textwrap.dedent(
        """

        class Priced(Service):
            name = "shop.priced"

            def handle(self):
                self.response.headers["X-Price"] = "10 €"
                self.response.payload = {"price": 10}
        """
    )
    assert (await deploy(server, ("shop/items.py", source))).status_code == 200
    assert (await create_channel(server, "priced", "/priced", "shop.priced")).status_code == 201
    async with real_client(server) as client:
        answer = await client.get("/priced")
    assert answer.status_code == 500
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    assert "shop.priced" in answer.json()["error"]["message"]
    check_cid(answer)


# -- bodies checked by their models, the document made from them -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/splice/admin/cluster/sync", {"sequence": False}, ["sequence"]),
        ("/splice/admin/cluster/sync", {"sequence": "7"}, ["sequence"]),
        (
            "/splice/admin/deploy",
            {"modules": [{"path": "a.py"}], "deployed_by": 5},
            ["modules[0].source", "deployed_by"],
        ),
        ("/splice/admin/deploy", {"modules": []}, ["modules"]),
        ("/splice/admin/rollback", {"path": "a.py", "version": True}, ["version"]),
        ("/splice/admin/channels", {"name": {"a": 1}, "path": "/x", "service": "s"}, ["name"]),
        ("/splice/admin/security", {"name": "x", "kind": "apikey", "key": "k", "header": ["X-Key"]}, ["header"]),
        ("/splice/admin/security", {"name": "x", "kind": "basic", "username": "", "password": "p"}, ["username"]),
        ("/splice/admin/invoke", {"service": "shop.echo", "extra": 1}, ["extra"]),
    ],
)
async def test_a_refused_body_names_every_bad_field(
    server: InProcess, path: str, body: dict[str, Any], fields: list[str]
) -> None:
    answer = await server.admin.post(path, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bad_request"
    assert [p["field"] for p in error["problems"]] == fields
    for field in fields:
        assert f"{field}: " in error["message"]
    check_cid(answer)


async def test_a_method_a_path_does_not_serve_is_405_naming_those_it_does(server: InProcess) -> None:
    answer = await server.admin.patch("/splice/admin/channels", json={})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    check_cid(answer)


async def test_every_operation_documents_its_body_answer_and_errors(server: InProcess) -> None:
    document = (await server.admin.get("/splice/admin/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "401" in statuses, (method, path)
            ok = min(statuses)
            assert ok in ("200", "201"), (method, path)
            (media,) = operation["responses"][ok]["content"].values()
            assert "schema" in media, (method, path)
            assert "example" in media, (method, path)
            if method in ("post", "patch") and "requestBody" in operation:
                (body,) = operation["requestBody"]["content"].values()
                assert "example" in body, (method, path)
                assert "400" in statuses, (method, path)
    create = document["paths"]["/splice/admin/channels"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "404", "409", "413"}
    channel = document["components"]["schemas"]["ChannelBody"]
    assert channel["additionalProperties"] is False
    assert set(channel["required"]) == {"name", "path", "service"}


async def test_an_amqp_channel_needs_an_amqp_connection(server: InProcess) -> None:
    body = {"name": "orders-in", "kind": "amqp", "service": "shop.take", "connection": "mq", "queue": "orders"}
    missing = await server.admin.post("/splice/admin/channels", json=body)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["message"] == (
        "channel 'orders-in' consumes through an amqp connection: no connection named 'mq'"
    )
    rest = {"name": "mq", "kind": "rest", "address": "http://127.0.0.1:9"}
    assert (await server.admin.post("/splice/admin/outgoing", json=rest)).status_code == 201
    wrong = await server.admin.post("/splice/admin/channels", json=body)
    assert wrong.status_code == 404
    assert wrong.json()["error"]["message"].endswith("'mq' is a rest connection")
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []
