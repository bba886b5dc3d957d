"""The deployment path on one server, against every ODB backend, through the real admin API."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import InProcess

ORDERS = textwrap.dedent(
    '''
    from splice.server import Service
    from billing import common

    class GetOrder(Service):
        """Return one order."""

        class Input:
            id: int

        async def handle(self):
            self.response.payload = {"id": self.request.input["id"], "tax": common.TAX}
    '''
)
COMMON = textwrap.dedent(
    """
    from splice.server import Service
    TAX = {tax}

    class Echo(Service):
        name = "echo"

        def handle(self):
            self.response.payload = self.request.payload
    """
)


async def deploy(server: InProcess, *modules: tuple[str, str]) -> tuple[int, dict]:
    body = {"modules": [{"path": p, "source": s} for p, s in modules]}
    answer = await server.admin.post("/splice/admin/deploy", json=body)
    return answer.status_code, answer.json()


async def invoke(server: InProcess, name: str, payload: object = None) -> tuple[int, dict]:
    answer = await server.admin.post("/splice/admin/invoke", json={"service": name, "payload": payload})
    return answer.status_code, answer.json()


async def test_deploy_invoke_redeploy_refresh_importers(server: InProcess) -> None:
    status, answer = await deploy(server, ("billing/common.py", COMMON.format(tax=0.2)), ("billing/orders.py", ORDERS))
    assert status == 200, answer
    assert answer["sequence"] >= 1
    assert {m["path"]: m["services"] for m in answer["modules"]} == {
        "billing/common.py": ["echo"],
        "billing/orders.py": ["billing.orders.get-order"],
    }
    assert (await invoke(server, "billing.orders.get-order", {"id": 3}))[1]["payload"] == {"id": 3, "tax": 0.2}

    status, answer = await deploy(server, ("billing/common.py", COMMON.format(tax=0.25)))
    assert status == 200, answer
    assert answer["modules"][0]["version"] == 2
    assert answer["reloaded"] == ["billing.orders"]
    assert (await invoke(server, "billing.orders.get-order", {"id": 3}))[1]["payload"]["tax"] == 0.25


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("x = (\n", 1, 5, "SyntaxError"),
        ("from splice.server import Service\nimport no_such_module_here\n", 2, None, "No module named"),
        ("from splice.server import Service\n\n\ndef f():\n    return 1 / 0\n\nf()\n", 5, None, "ZeroDivisionError"),
        ("from splice.server import Service\nX = 1\n", None, None, "defines no service"),
        ("from splice.server import Service\n\nclass A(Service):\n    pass\n", 3, None, "does not define handle()"),
        ("import sys\nsys.exit(3)\n", 2, None, "SystemExit"),
    ],
)
async def test_broken_deploy_is_refused_and_old_version_keeps_serving(
    server: InProcess, source: str, line: int | None, column: int | None, fragment: str
) -> None:
    assert (await deploy(server, ("billing/common.py", COMMON.format(tax=0.2))))[0] == 200
    status, answer = await deploy(server, ("billing/common.py", source))
    assert status == 422, answer
    problem = answer["error"]["problems"][0]
    assert problem["path"] == "billing/common.py"
    assert problem["line"] == line
    assert problem["column"] == column
    assert fragment in problem["message"]
    assert (await invoke(server, "echo", {"still": "here"}))[1]["payload"] == {"still": "here"}
    modules = (await server.admin.get("/splice/admin/modules")).json()["modules"]
    assert [(m["path"], m["version"]) for m in modules] == [("billing/common.py", 1)]
