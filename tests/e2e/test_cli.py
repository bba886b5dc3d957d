"""The user's journey with the real ``splice`` command and a real cluster subprocess on SQLite.

Create a cluster, start it, deploy, reach a service over a REST channel, edit and redeploy, survive a
broken file, invoke, undeploy, stop and restart; and every error is one line, never a traceback.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster, free_port, make_cluster, splice

CID = re.compile(r"^[0-9a-f]{24}$")

ORDERS = textwrap.dedent(
    '''
    from splice.server import Service


    class GetOrder(Service):
        """One order; the id comes from the path over HTTP, from the payload when invoked."""

        name = "orders.get"

        def handle(self):
            order_id = self.request.path_params.get("id") or self.request.input.get("id")
            self.response.payload = {"id": order_id, "version": VERSION}
    '''
)


def orders(version: int) -> str:
    return ORDERS.replace("VERSION", str(version))


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("splice: "), lines[0]
    return lines[0]


def channel_create(directory: str, name: str, path: str, service: str, *extra: str) -> tuple[str, ...]:
    return ("channel", "create", "--cluster", directory, "--name", name, "--path", path, "--service", service, *extra)


def status(directory: Path) -> tuple[int, dict]:
    result = splice("status", str(directory), "--json", check=False)
    return result.returncode, json.loads(result.stdout)


# -- creating, starting and stopping a cluster -----------------------------------------------------------------


def test_quickstart_create_with_the_installed_command(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("splice")
    port = free_port()
    directory = tmp_path / "shop-cluster"
    created = subprocess.run(
        [str(command), "quickstart", "create", str(directory), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert "created cluster 'shop-cluster'" in created.stdout
    token_file = directory / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32
    config = (directory / "cluster.toml").read_text()
    assert f"port = {port + 1}" in config
    assert f"port = {port + 2}" in config  # two servers by default
    assert (directory / "pickup").is_dir()
    assert (directory / "server1" / "work" / "deployed").is_dir()

    # A second create into the same directory is refused and changes nothing.
    again = splice("quickstart", "create", str(directory), "--port", str(free_port()), check=False)
    assert "is already a cluster" in one_line_error(again)
    assert token_file.read_text().strip() == token
    config = (directory / "cluster.toml").read_text()
    assert f"port = {port + 1}" in config
    assert f"port = {port + 2}" in config  # two servers by default
    assert (directory / "pickup").is_dir()

    other = tmp_path / "notes"
    write(other / "todo.txt", "buy milk\n")
    refused = splice("quickstart", "create", str(other), "--port", str(free_port()), check=False)
    message = one_line_error(refused)
    assert str(other) in message
    assert "not empty" in message
    assert sorted(p.name for p in other.iterdir()) == ["todo.txt"]


def test_start_status_stop(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster")
    code, before = status(made.directory)
    assert code != 0
    assert [(s["name"], s["healthy"], s["pid"]) for s in before["servers"]] == [("server1", False, None)]
    try:
        started = splice("start", str(made.directory))
        # start returns only once ping answers: no retry needed here.
        ping = httpx.get(f"{made.url}/splice/ping", timeout=5)
        assert ping.status_code == 200
        assert ping.json()["server"] == "server1"
        assert CID.match(ping.headers["x-splice-cid"])

        code, after = status(made.directory)
        assert code == 0
        assert after["cluster"] == "cluster"
        [server] = after["servers"]
        assert set(server) >= {"name", "url", "pid", "healthy"}
        assert server["name"] == "server1"
        assert server["url"] == made.url
        assert server["healthy"] is True
        assert isinstance(server["pid"], int)
        assert f"(pid {server['pid']})" in started.stdout
        os.kill(server["pid"], 0)  # a live process

        again = splice("start", str(made.directory))
        assert "already running" in again.stdout
        assert status(made.directory)[1]["servers"][0]["pid"] == server["pid"]
    finally:
        stopped = splice("stop", str(made.directory))
    assert "server1 stopped" in stopped.stdout
    code, down = status(made.directory)
    assert code != 0
    assert [(s["healthy"], s["pid"]) for s in down["servers"]] == [(False, None)]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{made.url}/splice/ping", timeout=2)
    assert "was not running" in splice("stop", str(made.directory)).stdout

    # Deploying to the stopped cluster says so in one line.
    file = write(tmp_path / "src" / "x.py", orders(1))
    refused = splice("deploy", str(file), "--cluster", str(made.directory), "--root", str(file.parent), check=False)
    assert "no server of" in one_line_error(refused)


# -- the edit loop ----------------------------------------------------------------------------------------------


def test_deploy_channel_edit_break_invoke_undeploy(cluster: Cluster, tmp_path: Path) -> None:
    directory = str(cluster.directory)
    source = write(tmp_path / "src" / "shop" / "orders.py", orders(1))
    deploy = ("deploy", "src/shop/orders.py", "--cluster", directory, "--root", "src")

    deployed = splice(*deploy, cwd=tmp_path)
    assert "deployed shop/orders.py v1" in deployed.stdout
    assert "orders.get" in deployed.stdout

    created = splice(*channel_create(directory, "orders", "/orders/{id}", "orders.get", "--method", "GET"))
    assert created.stdout.strip() == "channel orders: GET /orders/{id} -> orders.get"
    assert created.stderr == ""  # no warning: the service exists

    with httpx.Client(base_url=cluster.url, timeout=30) as http:
        answer = http.get("/orders/7")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"id": "7", "version": 1}
        assert CID.match(answer.headers["x-splice-cid"])

        # Edit and redeploy: the new version answers.
        source.write_text(orders(2))
        redeployed = splice(*deploy, cwd=tmp_path)
        assert "deployed shop/orders.py v2" in redeployed.stdout
        assert http.get("/orders/8").json() == {"id": "8", "version": 2}

        # A broken version is refused with file:line:column, and version 2 keeps answering.
        broken = orders(3) + "\n\ndef total(order:\n    return 0\n"
        with pytest.raises(SyntaxError) as expected:
            compile(broken, "orders.py", "exec")
        source.write_text(broken)
        refused = splice(*deploy, cwd=tmp_path, check=False)
        assert refused.returncode != 0
        assert "Traceback" not in refused.stderr
        line, column = expected.value.lineno, expected.value.offset
        assert broken.splitlines()[line - 1].startswith("def total(")
        assert refused.stderr.startswith(f"src/shop/orders.py:{line}:{column}: SyntaxError"), refused.stderr
        assert http.get("/orders/9").json() == {"id": "9", "version": 2}

        invoked = splice("invoke", "orders.get", "--payload", '{"id": 3}', "--cluster", directory)
        assert json.loads(invoked.stdout) == {"id": 3, "version": 2}

        listed = splice("channel", "list", "--cluster", directory)
        assert listed.stdout.strip() == "orders  GET /orders/{id} -> orders.get"
        deleted = splice("channel", "delete", "orders", "--cluster", directory)
        assert deleted.stdout.strip() == "deleted channel orders"
        assert splice("channel", "list", "--cluster", directory).stdout.strip() == ""
        gone = http.get("/orders/7")
        assert gone.status_code == 404
        assert CID.match(gone.headers["x-splice-cid"])

        source.write_text(orders(2))
        undeployed = splice("undeploy", "src/shop/orders.py", "--cluster", directory, "--root", "src", cwd=tmp_path)
        assert undeployed.stdout.splitlines() == ["undeployed shop/orders.py", "removed services: orders.get"]
        services = splice("services", "--json", "--cluster", directory)
        assert json.loads(services.stdout) == []
        missing = splice("invoke", "orders.get", "--cluster", directory, check=False)
        assert "no service named 'orders.get'" in one_line_error(missing)


def test_redeploy_after_undeploy(cluster: Cluster, tmp_path: Path) -> None:
    """The package left empty by an undeploy must not count as an installed module that would be shadowed."""
    write(tmp_path / "src" / "shop" / "orders.py", orders(1))
    args = ("src/shop/orders.py", "--cluster", str(cluster.directory), "--root", "src")
    splice("deploy", *args, cwd=tmp_path)
    splice("undeploy", *args, cwd=tmp_path)
    again = splice("deploy", *args, cwd=tmp_path, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(splice("invoke", "orders.get", "--cluster", str(cluster.directory)).stdout)["version"] == 1


def test_restart_loads_every_module_back_from_the_odb(cluster: Cluster, tmp_path: Path) -> None:
    directory = str(cluster.directory)
    write(tmp_path / "src" / "shop" / "tax.py", TAX.format(rate=0.1))
    write(tmp_path / "src" / "shop" / "orders.py", PRICED)
    write(tmp_path / "src" / "audit.py", AUDIT)
    # A directory deploys every module below it, in one all-or-nothing deployment.
    splice("deploy", "src", "--cluster", directory, "--root", "src", cwd=tmp_path)
    write(tmp_path / "src" / "shop" / "tax.py", TAX.format(rate=0.25))
    splice("deploy", "src/shop/tax.py", "--cluster", directory, "--root", "src", cwd=tmp_path)
    splice(*channel_create(directory, "price", "/price/{amount:int}", "shop.orders.price"))

    with cluster.admin() as admin:
        before = admin.get("/splice/admin/modules").json()["modules"]
    assert [(m["path"], m["version"]) for m in before] == [("audit.py", 1), ("shop/orders.py", 1), ("shop/tax.py", 2)]
    first_pid = status(cluster.directory)[1]["servers"][0]["pid"]

    splice("stop", directory)
    # The files a server loads from are only a copy: remove them, the ODB is the truth.
    deployed = cluster.directory / "server1" / "work" / "deployed"
    for path in sorted(deployed.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    splice("start", directory)

    assert status(cluster.directory)[1]["servers"][0]["pid"] != first_pid
    with httpx.Client(base_url=cluster.url, timeout=30) as http:
        answer = http.get("/price/100")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"amount": 100, "total": 125.0}
    with cluster.admin() as admin:
        after = admin.get("/splice/admin/modules").json()["modules"]
        info = admin.get("/splice/admin/server").json()
    assert [(m["path"], m["version"], m["services"]) for m in after] == [
        ("audit.py", 1, ["audit.record"]),
        ("shop/orders.py", 1, ["shop.orders.price"]),
        ("shop/tax.py", 2, ["shop.tax.rate"]),
    ]
    assert info["load_failures"] == []
    assert info["modules"] == 3
    assert (deployed / "shop" / "tax.py").read_text() == TAX.format(rate=0.25)
    invoked = splice("invoke", "audit.record", "--payload", '{"who": "me"}', "--cluster", directory)
    assert json.loads(invoked.stdout) == {"recorded": {"who": "me"}}


TAX = textwrap.dedent(
    """
    from splice.server import Service

    RATE = {rate}


    class Rate(Service):
        def handle(self):
            self.response.payload = RATE
    """
)
PRICED = textwrap.dedent(
    """
    from splice.server import Service

    from shop import tax


    class Price(Service):
        class Input:
            amount: int

        def handle(self):
            amount = self.request.input["amount"]
            self.response.payload = {"amount": amount, "total": amount * (1 + tax.RATE)}
    """
)
AUDIT = textwrap.dedent(
    """
    from splice.server import Service


    class Record(Service):
        name = "audit.record"

        async def handle(self):
            self.response.payload = {"recorded": self.request.payload}
    """
)


# -- errors are one line ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def not_running(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Directories for commands that must fail: a cluster never started, none, a broken one, one without token."""
    base = tmp_path_factory.mktemp("not-running")
    made = make_cluster(base / "cluster")
    src = base / "src"
    write(src / "a.py", orders(1))
    broken = write(base / "broken" / "cluster.toml", "[cluster\nname = 'x'\n").parent
    tokenless = make_cluster(base / "tokenless").directory
    (tokenless / "admin-token").unlink()
    return {
        "src": str(src),
        "cluster": str(made.directory),
        "nowhere": str(base / "nowhere"),
        "broken": str(broken),
        "tokenless": str(tokenless),
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("deploy", "{src}/a.py", "--cluster", "{cluster}", "--root", "{src}"), "no server of"),
        (("undeploy", "{src}/a.py", "--cluster", "{cluster}", "--root", "{src}"), "no server of"),
        (("invoke", "orders.get", "--cluster", "{cluster}"), "no server of"),
        (("channel", "list", "--cluster", "{cluster}"), "no server of"),
        (("services", "--cluster", "{cluster}"), "no server of"),
        (("invoke", "orders.get", "--payload", "{{not json", "--cluster", "{cluster}"), "--payload is not valid JSON"),
        (("deploy", "{src}/a.py", "--cluster", "{nowhere}", "--root", "{src}"), "cluster.toml: not found"),
        (("deploy", "missing.py", "--cluster", "{cluster}", "--root", "{src}"), "no such file: missing.py"),
        (("invoke", "orders.get", "--cluster", "{nowhere}"), "cluster.toml: not found"),
        (("status", "{nowhere}"), "cluster.toml: not found"),
        (("status", "--cluster", "{nowhere}"), "cluster.toml: not found"),
        (("debug", "info", "--cluster", "{nowhere}"), "cluster.toml: not found"),
        (("status", "{cluster}", "--cluster", "{nowhere}"), "two cluster directories"),
        (("start", "{nowhere}"), "cluster.toml: not found"),
        (("stop", "{nowhere}"), "cluster.toml: not found"),
        (("channel", "list", "--cluster", "{nowhere}"), "cluster.toml: not found"),
        (("status", "{broken}"), "not valid TOML"),
        (("start", "{broken}"), "not valid TOML"),
        (("invoke", "orders.get", "--cluster", "{broken}"), "not valid TOML"),
        (("invoke", "orders.get", "--cluster", "{tokenless}"), "admin token file is missing"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(value[:2]),
)
def test_errors_without_a_running_cluster_are_one_line(
    not_running: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    result = splice(*(arg.format(**not_running) for arg in args), check=False)
    assert fragment in one_line_error(result)


def test_errors_with_a_running_cluster_are_one_line(cluster: Cluster, tmp_path: Path) -> None:
    directory = str(cluster.directory)
    src = write(tmp_path / "src" / "shop" / "orders.py", orders(1)).parent.parent
    outside = write(tmp_path / "elsewhere" / "x.py", orders(1))
    cases = [
        (("invoke", "shop.nothing", "--cluster", directory), "no service named 'shop.nothing'"),
        (("invoke", "shop.nothing", "--payload", "{'id': 1}", "--cluster", directory), "--payload is not valid JSON"),
        (("deploy", str(outside), "--cluster", directory, "--root", str(src)), "not inside the project root"),
        (("deploy", str(src / "missing.py"), "--cluster", directory, "--root", str(src)), "no such file"),
        (("undeploy", str(src / "shop" / "orders.py"), "--cluster", directory, "--root", str(src)), "not deployed"),
        (("channel", "delete", "nothing", "--cluster", directory), "no channel named 'nothing'"),
        (channel_create(directory, "x", "orders", "s"), "must start with '/'"),
        (channel_create(directory, "x", "/x", "s", "--method", "FETCH"), "unknown HTTP method FETCH"),
        (channel_create(directory, "x", "/x", "s", "--security", "nothing"), "no security definition named 'nothing'"),
        (("security", "create", "--cluster", directory, "--name", "p", "--kind", "apikey"), "give the secret"),
    ]
    for args, fragment in cases:
        result = splice(*args, check=False)
        assert fragment in one_line_error(result), args
    # A token that is not the cluster's is refused, in one line.
    token_file = cluster.directory / "admin-token"
    token_file.write_text("not-the-token\n")
    try:
        refused = splice("services", "--cluster", directory, check=False)
    finally:
        token_file.write_text(cluster.token + "\n")
    assert "Authorization: Bearer" in one_line_error(refused)
    # None of it harmed the cluster.
    assert status(cluster.directory)[0] == 0
    assert splice("services", "--json", "--cluster", directory).stdout.strip() == "[]"


# -- the command itself: its version, shell completion, which cluster ----------------------------------------------


def without_splice_cluster(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """The real ``splice`` with ``$SPLICE_CLUSTER`` only as given here (a devcontainer sets one)."""
    env = {name: value for name, value in os.environ.items() if name != "SPLICE_CLUSTER"} | environ
    command = [sys.executable, "-m", "splice.server.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_version() -> None:
    result = splice("--version")
    assert result.stdout == f"splice {importlib.metadata.version('splice')}\n"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_name_every_command(shell: str) -> None:
    script = splice("completion", shell).stdout
    for command in ("quickstart", "start", "status", "deploy", "channel", "job", "debug", "completion"):
        assert re.search(rf"\b{command}\b", script), command
    assert "--cluster" in script
    if shell == "bash":
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


def test_bash_completes_commands_and_options() -> None:
    script = splice("completion", "bash").stdout
    probe = textwrap.dedent(
        """
        complete() { :; }  # the script registers itself; not needed to call its function
        source /dev/stdin
        words=(splice channel create --)
        COMP_WORDS=("${words[@]}"); COMP_CWORD=3; COMP_LINE="${words[*]}"; COMP_POINT=${#COMP_LINE}
        _shtab_splice splice -- create
        echo "${COMPREPLY[*]}"
        COMP_WORDS=(splice st); COMP_CWORD=1; COMP_LINE="splice st"; COMP_POINT=9
        _shtab_splice splice st splice
        echo "${COMPREPLY[*]}"
        """
    )
    result = subprocess.run(["bash", "-c", probe], input=script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    options, commands = result.stdout.splitlines()
    assert {"--cluster", "--name", "--path", "--service"} <= set(options.split())
    assert commands.split() == ["start", "stop", "status"]


def test_the_cluster_directory_comes_from_splice_cluster(not_running: dict[str, str]) -> None:
    directory = Path(not_running["cluster"])
    result = without_splice_cluster("status", "--json", SPLICE_CLUSTER=str(directory))
    assert result.returncode == 3, result.stderr  # not started: every server down
    assert json.loads(result.stdout)["directory"] == str(directory.resolve())
    # The directory given on the command line wins over the variable.
    given = without_splice_cluster(
        "status", "--json", "--cluster", str(directory), SPLICE_CLUSTER=not_running["nowhere"]
    )
    assert json.loads(given.stdout)["directory"] == str(directory.resolve())


@pytest.mark.parametrize(
    ("args", "forms"),
    [
        (("status",), "DIR or --cluster DIR"),
        (("services",), "--cluster DIR"),
        (("job", "list"), "--cluster DIR"),
        (("create", "server"), "DIR"),  # its --cluster names the cluster of a new server directory
    ],
)
def test_without_a_cluster_directory_says_how_to_give_one(args: tuple[str, ...], forms: str) -> None:
    message = one_line_error(without_splice_cluster(*args))
    assert message == f"splice: which cluster? give its directory ({forms}) or set $SPLICE_CLUSTER"
