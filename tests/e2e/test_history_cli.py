"""``splice history``, ``splice rollback`` and ``splice apply`` with the real command on a real two-server cluster.

Once the command has answered, both servers must already answer with the rolled-back code and the
applied channel: the answer waits for each server's confirmation.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster, make_cluster, running, splice

ORDERS = textwrap.dedent(
    """
    from splice.server import Service


    class GetOrder(Service):
        name = "orders.get"

        def handle(self):
            self.response.payload = {"id": self.request.path_params.get("id"), "version": VERSION}
    """
)
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
SECRET = "s3cret-for-the-e2e-test"


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path / "cluster", servers=2)) as made:
        yield made


def run(cluster: Cluster, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = splice(*args, "--cluster", str(cluster.directory), cwd=cwd, check=check)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return result


def orders_on_every_server(cluster: Cluster, auth: tuple[str, str] = ("acme", SECRET)) -> list[object]:
    return [httpx.get(f"{url}/orders/7", auth=auth, timeout=10).json().get("version") for url in cluster.urls]


def test_apply_then_rollback_on_both_servers(two: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    source = project / "shop" / "orders.py"
    source.parent.mkdir(parents=True)
    for version in (1, 2):
        source.write_text(ORDERS.replace("VERSION", str(version)), encoding="utf-8")
        run(two, project, "deploy", "shop/orders.py")

    # Configuration as code: the secret comes from the environment, never from the file.
    (project / "splice.toml").write_text(DECLARATION, encoding="utf-8")
    missing = run(two, project, "apply", "splice.toml", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "splice.toml:5: security[0].password_env: PARTNERS_PASSWORD is not set in the environment of splice apply"
    )
    monkeypatch.setenv("PARTNERS_PASSWORD", SECRET)
    dry = run(two, project, "apply", "splice.toml", "--dry-run")
    assert "would create channel get-order" in dry.stdout
    assert httpx.get(f"{two.url}/orders/7", timeout=10).status_code == 404

    applied = run(two, project, "apply", "splice.toml")
    assert applied.stdout.splitlines()[:3] == [
        "splice.toml: create security definition partners",
        "splice.toml: create channel get-order",
        "splice.toml: applied: 2 created, 0 updated, 0 deleted, 0 unchanged",
    ]
    assert "server1: deployed" in applied.stdout
    assert "server2: deployed" in applied.stdout
    assert orders_on_every_server(two) == [2, 2]
    assert [httpx.get(f"{url}/orders/7", timeout=10).status_code for url in two.urls] == [401, 401]

    again = run(two, project, "apply", "splice.toml")
    assert again.stdout.strip() == "splice.toml: no change, the cluster already holds it (2 objects unchanged)"

    moved = DECLARATION.replace("/orders/{id}", "/v2/orders/{id}")
    (project / "splice.toml").write_text(moved, encoding="utf-8")
    updated = run(two, project, "apply", "splice.toml")
    assert updated.stdout.splitlines()[0] == "splice.toml: update channel get-order (path)"
    assert [httpx.get(f"{url}/v2/orders/7", auth=("acme", SECRET), timeout=10).status_code for url in two.urls] == [
        200,
        200,
    ]
    (project / "splice.toml").write_text(DECLARATION, encoding="utf-8")
    run(two, project, "apply", "splice.toml")

    # History, then a rollback that both servers confirm before the command returns.
    history = run(two, project, "history", "shop/orders.py")
    lines = history.stdout.splitlines()
    assert lines[0] == "shop/orders.py: v2 is deployed"
    assert lines[1].split() == ["VERSION", "ACTION", "SEQUENCE", "WHEN", "WHO", "ORIGIN", "SHA256"]
    assert [line.split()[0] for line in lines[2:]] == ["v1", "*"]
    assert lines[3].split()[1:3] == ["v2", "deploy"]

    rolled = run(two, project, "rollback", "shop/orders.py", "--to", "v1")
    assert rolled.stdout.splitlines()[0] == "rolled back shop/orders.py to v1: now v3 (orders.get)"
    assert "server1: deployed" in rolled.stdout
    assert "server2: deployed" in rolled.stdout
    assert orders_on_every_server(two) == [1, 1]

    listed = json.loads(run(two, project, "history", "shop.orders", "--json").stdout)
    assert listed["current"] == 3
    assert [(v["version"], v["origin"]) for v in listed["versions"]] == [(1, None), (2, None), (3, "rollback:v1")]
    assert listed["versions"][2]["sha256"] == listed["versions"][0]["sha256"]
    assert listed["versions"][2]["deployed_by"].startswith("cli")

    # The file is gone from the project: history and rollback still take its module path.
    source.unlink()
    back = run(two, project, "rollback", "shop/orders.py", "--to", "2")
    assert back.returncode == 0
    assert orders_on_every_server(two) == [2, 2]


def test_refusals_are_one_line_with_a_non_zero_exit(two: Cluster, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "orders.py").write_text(ORDERS.replace("VERSION", "1"), encoding="utf-8")
    run(two, project, "deploy", "orders.py")
    for args, message in [
        (("rollback", "orders.py", "--to", "9"), "splice: orders.py has no version 9 (it has v1 to v1)"),
        (("history", "billing/nothing.py"), "splice: no module was ever deployed at billing/nothing.py"),
        (("apply", "absent.toml"), "splice: absent.toml: no such file"),
    ]:
        result = run(two, project, *args, check=False)
        assert (result.returncode, result.stderr.strip()) == (1, message), result
    (project / "splice.toml").write_text('[[channels]]\nname = "x"\npath = "x"\nservice = "orders.get"\n')
    broken = run(two, project, "apply", "splice.toml", check=False)
    assert broken.returncode == 1
    assert broken.stderr.strip() == "splice.toml:3: channels[0].path: a channel path must start with '/': 'x'"
