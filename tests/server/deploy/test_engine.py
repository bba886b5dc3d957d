"""The deployment path on one server, against every ODB backend, through the real admin API."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

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


SLOW = textwrap.dedent(
    """
    import asyncio
    from pathlib import Path
    from splice.server import Service

    class Slow(Service):
        name = "slow"

        async def handle(self):
            marker = Path(self.request.payload["dir"])
            (marker / "started").touch()
            while not (marker / "release").exists():
                await asyncio.sleep(0.01)
            self.response.payload = "{version}"
    """
)


async def test_calls_in_flight_finish_on_the_old_code(server: InProcess, tmp_path: Path) -> None:
    assert (await deploy(server, ("slow.py", SLOW.format(version="v1"))))[0] == 200
    in_flight = asyncio.create_task(invoke(server, "slow", {"dir": str(tmp_path)}))
    for _ in range(1000):
        if (tmp_path / "started").exists():
            break
        await asyncio.sleep(0.01)
    assert (await deploy(server, ("slow.py", SLOW.format(version="v2"))))[0] == 200
    (tmp_path / "release").touch()
    assert (await invoke(server, "slow", {"dir": str(tmp_path)}))[1]["payload"] == "v2"
    assert (await in_flight)[1]["payload"] == "v1"


async def test_a_restarted_server_loads_every_module_from_the_odb(server: InProcess) -> None:
    from splice.server.bootstrap import build_runtime

    await deploy(server, ("billing/common.py", COMMON.format(tax=0.5)), ("billing/orders.py", ORDERS))
    runtime = server.runtime
    runtime.engine.close()  # type: ignore[attr-defined]
    fresh = await build_runtime(runtime.settings, "server1")  # type: ignore[attr-defined]
    try:
        assert fresh.store.names() == ["billing.orders.get-order", "echo"]
        answer = await fresh.invoker.call("billing.orders.get-order", {"id": 1})
        assert answer.payload == {"id": 1, "tax": 0.5}
        deployed = fresh.engine.deployed_dir / "billing" / "orders.py"
        assert deployed.read_text() == ORDERS
        assert fresh.store.get("echo").cls.handle.__code__.co_filename == str(
            fresh.engine.deployed_dir / "billing/common.py"
        )  # type: ignore[union-attr]
    finally:
        await fresh.close()


async def test_undeploy_is_refused_while_another_module_imports_it(server: InProcess) -> None:
    deployed = await deploy(server, ("billing/common.py", COMMON.format(tax=0.5)), ("billing/orders.py", ORDERS))
    assert deployed[0] == 200, deployed
    answer = await server.admin.post("/splice/admin/undeploy", json={"paths": ["billing/common.py"]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["problems"][0]["path"] == "billing/orders.py"
    assert (await invoke(server, "echo", 1))[1]["payload"] == 1
    answer = await server.admin.post(
        "/splice/admin/undeploy", json={"paths": ["billing/common.py", "billing/orders.py"]}
    )
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["services"]) == ["billing.orders.get-order", "echo"]
    assert (await invoke(server, "echo", 1))[0] == 404
    history = (await server.admin.get("/splice/admin/modules/billing/common.py/history")).json()["versions"]
    assert [(v["version"], v["action"]) for v in history] == [(1, "deploy"), (2, "undeploy")]


@pytest.mark.parametrize(
    ("first", "second", "fragment"),
    [
        ("billing.py", "billing/__init__.py", "already deployed from billing.py"),
        ("billing/common.py", "billing.py", "is a package of deployed modules"),
        ("billing.py", "billing/common.py", "is the deployed module billing.py"),
    ],
)
async def test_one_module_name_from_two_layouts_is_refused(
    server: InProcess, first: str, second: str, fragment: str
) -> None:
    assert (await deploy(server, (first, COMMON.format(tax=1))))[0] == 200
    status, answer = await deploy(server, (second, COMMON.format(tax=2).replace('"echo"', '"echo2"')))
    assert status == 422, answer
    assert fragment in answer["error"]["problems"][0]["message"]
    assert (await invoke(server, "echo", 5))[1]["payload"] == 5


async def test_a_large_module_is_kept_whole_and_one_over_the_limit_is_refused(server: InProcess) -> None:
    padding = "# " + "x" * 98 + "\n"
    large = COMMON.format(tax=1) + padding * 2000  # 200 KB: more than MySQL's TEXT holds
    assert (await deploy(server, ("billing/common.py", large)))[0] == 200
    records = await server.runtime.repository.current_modules()  # type: ignore[attr-defined]
    assert records[0].source == large
    limit = server.runtime.settings.max_module_bytes  # type: ignore[attr-defined]
    status, answer = await deploy(server, ("billing/common.py", padding * (limit // len(padding) + 1)))
    assert status == 422
    assert answer["error"]["problems"][0]["kind"] == "size"
    assert f"the limit is {limit}" in answer["error"]["problems"][0]["message"]


async def test_a_module_without_services_deploys_when_a_package_or_another_module_needs_it(server: InProcess) -> None:
    uses_rate = "from splice.server import Service\nfrom shop.helpers import RATE\n\n\nclass Price(Service):\n"
    uses_rate += "    name = 'price'\n\n    def handle(self):\n        self.response.payload = {'rate': RATE}\n"
    modules = (("shop/__init__.py", ""), ("shop/helpers.py", "RATE = 2\n"), ("shop/orders.py", uses_rate))
    status, answer = await deploy(server, *modules)
    assert status == 200, answer
    # A helper alone, needed by a deployed module: still a library.
    assert (await deploy(server, ("shop/helpers.py", "RATE = 3\n")))[0] == 200
    assert (await invoke(server, "price"))[1]["payload"] == {"rate": 3}
    # Needed by nobody and no package: most likely a mistake, refused.
    status, answer = await deploy(server, ("loose.py", "X = 1\n"))
    assert status == 422
    assert "defines no service" in answer["error"]["problems"][0]["message"]


async def test_a_slow_import_deploys_without_holding_the_odb_meanwhile(server: InProcess) -> None:
    slow = "import time\ntime.sleep(0.6)\n" + COMMON.format(tax=0.7)
    status, answer = await deploy(server, ("billing/common.py", slow))
    assert status == 200, answer
    assert answer["timings"]["isolate_ms"] >= 600
    assert answer["modules"][0]["version"] == 1
    assert (await invoke(server, "echo", "slow"))[1]["payload"] == "slow"
    history = (await server.admin.get("/splice/admin/modules/billing/common.py/history")).json()["versions"]
    assert [v["version"] for v in history] == [1]
