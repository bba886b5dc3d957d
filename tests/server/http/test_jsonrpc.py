"""JSON-RPC 2.0 channels on a real server in this process (SQLite ODB), following the specification's examples.

Single calls, notifications, batches (mixed answers in order, concurrency, limits), each error code, the
``services`` allow-list, and the channel's security.
"""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from splice.server.cli.cluster import quickstart_create
from splice.server.http.jsonrpc import allowed
from tests.conftest import InProcess, free_port, in_process

SERVICES = textwrap.dedent(
    '''
    import asyncio

    from pydantic import BaseModel

    from splice.server import Service

    seen = []
    both = asyncio.Event()


    class Subtract(Service):
        name = "math.subtract"

        class Input(BaseModel):
            minuend: int
            subtrahend: int

        def handle(self):
            self.response.payload = self.request.input.minuend - self.request.input.subtrahend


    class Sum(Service):
        """Positional params arrive as a list."""

        name = "math.sum"

        def handle(self):
            self.response.payload = sum(self.request.payload)


    class Note(Service):
        name = "math.note"

        def handle(self):
            seen.append(self.request.payload)


    class Seen(Service):
        name = "math.seen"

        def handle(self):
            self.response.payload = {"seen": seen, "channel": self.request.channel, "cid": self.cid}


    class Broken(Service):
        name = "math.broken"

        def handle(self):
            raise ValueError("division by zero, probably")


    class Bytes(Service):
        name = "math.bytes"

        def handle(self):
            self.response.payload = b"\\x00"


    class Nothing(Service):
        name = "math.nothing"

        async def handle(self):
            pass


    class Meet(Service):
        """Two calls of one batch that wait for each other: they only finish if they run at once."""

        name = "math.meet"

        async def handle(self):
            seen.append(self.request.payload)
            if seen.count(["meet"]) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 10)
            self.response.payload = "met"


    class Secret(Service):
        name = "admin.secret"

        def handle(self):
            self.response.payload = "nobody may see this"
    '''
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcess]:
    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    async with in_process(directory) as made:
        answer = await made.admin.post(
            "/splice/admin/deploy", json={"modules": [{"path": "rpc.py", "source": SERVICES}]}
        )
        assert answer.status_code == 200, answer.text
        body = {"name": "rpc", "kind": "jsonrpc", "path": "/rpc", "services": ["math.*"], "max_batch": 6}
        assert (await made.admin.post("/splice/admin/channels", json=body)).status_code == 201
        yield made


async def post(
    server: InProcess, body: Any, path: str = "/rpc", headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await server.client.post(
        path, content=content, headers={"content-type": "application/json", **(headers or {})}
    )


async def call(server: InProcess, body: Any) -> Any:
    answer = await post(server, body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


async def test_a_call_with_named_or_positional_params_answers_its_result(server: InProcess) -> None:
    named = {"jsonrpc": "2.0", "method": "math.subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 3}
    assert await call(server, named) == {"jsonrpc": "2.0", "result": 19, "id": 3}
    positional = {"jsonrpc": "2.0", "method": "math.sum", "params": [1, 2, 4], "id": "a"}
    assert await call(server, positional) == {"jsonrpc": "2.0", "result": 7, "id": "a"}
    # A null id is a call, not a notification; a service answering nothing has a null result.
    assert await call(server, {"jsonrpc": "2.0", "method": "math.nothing", "id": None}) == {
        "jsonrpc": "2.0",
        "result": None,
        "id": None,
    }
    seen = await call(server, {"jsonrpc": "2.0", "method": "math.seen", "id": 1.5})
    assert seen["result"]["channel"] == "rpc"
    assert seen["id"] == 1.5


async def test_a_notification_runs_and_gets_no_answer(server: InProcess) -> None:
    answer = await post(server, {"jsonrpc": "2.0", "method": "math.note", "params": ["hello"]})
    assert answer.status_code == 204
    assert answer.content == b""
    assert len(answer.headers["x-splice-cid"]) == 24
    # A failing notification is not answered either.
    assert (await post(server, {"jsonrpc": "2.0", "method": "math.broken"})).status_code == 204
    assert (await post(server, {"jsonrpc": "2.0", "method": "no.such"})).status_code == 204
    seen = await call(server, {"jsonrpc": "2.0", "method": "math.seen", "id": 1})
    assert seen["result"]["seen"] == [["hello"]]


async def test_a_batch_answers_in_order_leaving_notifications_out(server: InProcess) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "math.sum", "params": [1, 2, 4], "id": "1"},
        {"jsonrpc": "2.0", "method": "math.note", "params": [7]},
        {"jsonrpc": "2.0", "method": "math.subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "math.broken", "id": "9"},
    ]
    answers = await call(server, batch)
    assert [a["id"] for a in answers] == ["1", "2", None, "5", "9"]
    assert answers[0] == {"jsonrpc": "2.0", "result": 7, "id": "1"}
    assert answers[1] == {"jsonrpc": "2.0", "result": 19, "id": "2"}
    assert answers[2]["error"]["code"] == -32600
    assert answers[3]["error"]["code"] == -32601
    assert answers[4]["error"]["code"] == -32000
    cids = {answers[3]["error"]["data"]["cid"], answers[4]["error"]["data"]["cid"]}
    assert len(cids) == 2  # each call of a batch has its own cid

    only_notifications = await post(server, [{"jsonrpc": "2.0", "method": "math.note", "params": [n]} for n in (1, 2)])
    assert only_notifications.status_code == 204
    assert only_notifications.content == b""


async def test_the_calls_of_a_batch_run_concurrently(server: InProcess) -> None:
    batch = [{"jsonrpc": "2.0", "method": "math.meet", "params": ["meet"], "id": n} for n in (1, 2)]
    assert await call(server, batch) == [{"jsonrpc": "2.0", "result": "met", "id": n} for n in (1, 2)]


async def test_every_error_code(server: InProcess) -> None:
    parse = await call(server, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert parse["error"]["code"] == -32700
    assert parse["error"]["message"] == "Parse error"
    assert parse["id"] is None
    assert (await call(server, b"\xff\xfe"))["error"]["code"] == -32700

    for invalid in (
        {"jsonrpc": "2.0", "method": 1, "params": "bar"},
        {"jsonrpc": "1.0", "method": "math.sum", "params": [1], "id": 1},
        {"jsonrpc": "2.0", "method": "math.sum", "params": "bar", "id": 1},
        {"jsonrpc": "2.0", "method": "math.sum", "id": {"not": "an id"}},
        {"jsonrpc": "2.0", "method": "math.sum", "id": True},
        "a string",
    ):
        answer = await call(server, invalid)
        assert answer["error"]["code"] == -32600, invalid
        assert answer["error"]["message"] == "Invalid Request"
    assert (await call(server, {"jsonrpc": "1.0", "method": "math.sum", "id": 4}))["id"] == 4  # a usable id
    empty = await call(server, [])
    assert empty == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request", "data": {"message": "an empty batch"}},
        "id": None,
    }
    assert [a["error"]["code"] for a in await call(server, [1, 2, 3])] == [-32600] * 3
    too_many = await call(server, [{"jsonrpc": "2.0", "method": "math.sum", "params": [1], "id": n} for n in range(7)])
    assert too_many["error"]["code"] == -32600
    assert too_many["error"]["message"] == "batch too large"
    assert too_many["error"]["data"]["message"] == "7 calls in one batch; channel 'rpc' takes at most 6"

    missing = await call(server, {"jsonrpc": "2.0", "method": "math.missing", "id": 1})
    assert missing["error"]["code"] == -32601
    assert missing["error"]["message"] == "Method not found"

    params = await call(server, {"jsonrpc": "2.0", "method": "math.subtract", "params": {"minuend": "x"}, "id": 2})
    assert params["error"]["code"] == -32602
    assert params["error"]["message"] == "Invalid params"
    fields = {f["field"] for f in params["error"]["data"]["fields"]}
    assert fields == {"minuend", "subtrahend"}

    broken = await call(server, {"jsonrpc": "2.0", "method": "math.broken", "id": 3})
    assert broken["error"]["code"] == -32000
    data = broken["error"]["data"]
    assert data["code"] == "service_failed"
    assert "ValueError: division by zero, probably" in data["message"]
    assert len(data["cid"]) == 24
    assert "Traceback" not in json.dumps(broken)
    assert (await call(server, {"jsonrpc": "2.0", "method": "math.bytes", "id": 4}))["error"]["data"]["code"] == (
        "bad_response"
    )


async def test_services_outside_the_allow_list_look_like_missing_ones(server: InProcess) -> None:
    hidden = await call(server, {"jsonrpc": "2.0", "method": "admin.secret", "id": 1})
    missing = await call(server, {"jsonrpc": "2.0", "method": "admin.nothing", "id": 1})
    for answer in (hidden, missing):
        assert answer["error"]["code"] == -32601
        assert set(answer["error"]["data"]) == {"cid"}
    assert hidden["error"]["message"] == missing["error"]["message"]
    # The same service is reachable through a channel that allows it.
    body = {"name": "all", "kind": "jsonrpc", "path": "/all/{tenant}"}
    assert (await server.admin.post("/splice/admin/channels", json=body)).status_code == 201
    answer = await post(server, {"jsonrpc": "2.0", "method": "admin.secret", "id": 1}, path="/all/acme")
    assert answer.json()["result"] == "nobody may see this"


@pytest.mark.parametrize(
    ("method", "patterns", "expected"),
    [
        ("math.sum", ["*"], True),
        ("math.sum", ["math.*"], True),
        ("mathematics.sum", ["math.*"], False),
        ("Math.sum", ["math.*"], False),
        ("orders.get", ["math.*", "orders.get"], True),
        ("orders.get-all", ["orders.get"], False),
        ("orders.v1", ["orders.v?"], True),
    ],
)
def test_allow_list_patterns(method: str, patterns: list[str], expected: bool) -> None:
    assert allowed(method, patterns) is expected


async def test_http_edges_security_method_and_size(server: InProcess) -> None:
    for body in (
        {"name": "robots", "kind": "apikey", "key": "k3y-0f-r0b0ts"},
        {"name": "people", "kind": "basic", "username": "ann", "password": "s3cret"},
    ):
        assert (await server.admin.post("/splice/admin/security", json=body)).status_code == 201
    for name, security in (("keyed", "robots"), ("basic", "people")):
        body = {"name": name, "kind": "jsonrpc", "path": f"/{name}", "security": security}
        assert (await server.admin.post("/splice/admin/channels", json=body)).status_code == 201
    one = {"jsonrpc": "2.0", "method": "math.sum", "params": [1, 1], "id": 1}

    refused = await post(server, one, path="/keyed")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert (await post(server, one, path="/keyed", headers={"x-api-key": "wrong"})).status_code == 401
    keyed = await post(server, one, path="/keyed", headers={"x-api-key": "k3y-0f-r0b0ts"})
    assert keyed.json() == {"jsonrpc": "2.0", "result": 2, "id": 1}

    basic = await post(server, one, path="/basic")
    assert basic.status_code == 401
    assert basic.headers["www-authenticate"] == 'Basic realm="splice"'
    good = {"authorization": "Basic " + base64.b64encode(b"ann:s3cret").decode()}
    assert (await post(server, one, path="/basic", headers=good)).json()["result"] == 2

    wrong_method = await server.client.get("/rpc")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    too_large = await server.client.post("/rpc", content=b" " * (16 * 1024 * 1024 + 1))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "too_large"
