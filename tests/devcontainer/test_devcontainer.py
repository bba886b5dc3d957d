"""The devcontainer (``devcontainer/``, ``.devcontainer/devcontainer.json``): its files checked against their
schema and each other, and ``devcontainer/provision.sh`` run here, against the real PostgreSQL and Redis,
bringing up the cluster the way the compose services do (no container engine runs here).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from splice.server.cli._haproxy import find_haproxy
from splice.server.cli._ide_config import loads_jsonc
from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parents[2]
DEVCONTAINER = ROOT / "devcontainer"
COMPOSE = DEVCONTAINER / "compose.yaml"
DEVCONTAINER_JSON = ROOT / ".devcontainer" / "devcontainer.json"
BIN = Path(sys.executable).parent
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
CLUSTER_PARTS = ("provision", "server1", "server2", "scheduler", "haproxy")
LONG_RUNNING = ("postgres", "redis", "server1", "server2", "scheduler", "haproxy")


def _compose() -> dict[str, Any]:
    return dict(YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8")))


def _devcontainer() -> dict[str, Any]:
    return dict(loads_jsonc(DEVCONTAINER_JSON.read_text(encoding="utf-8"), str(DEVCONTAINER_JSON)))


def _provision_env() -> dict[str, str]:
    return {k: str(v) for k, v in _compose()["services"]["provision"]["environment"].items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each short-syntax volume of a service."""
    found = {}
    for entry in service.get("volumes", []):
        parts = entry.split(":")  # a source may hold ':' itself ("${VAR:-..}"); the target starts with '/'
        at = next(i for i, part in enumerate(parts) if i and part.startswith("/"))
        found[parts[at]] = ":".join(parts[:at])
    return found


# -- the files ------------------------------------------------------------------------------------------------


def test_compose_file_is_valid_by_the_compose_spec() -> None:
    checker = BIN / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_devcontainer_json_names_the_compose_file_service_and_workspace() -> None:
    # No devcontainer.json schema ships with check-jsonschema and none is reachable offline: check the keys.
    config = _devcontainer()
    compose = _compose()
    services = compose["services"]
    files = config["dockerComposeFile"]
    assert [(DEVCONTAINER_JSON.parent / f).resolve() for f in files] == [COMPOSE]
    assert config["service"] == "workspace"
    assert set(config["runServices"]) == set(services)
    assert config["workspaceFolder"] == "/workspaces/splice"
    assert _mounts(services["workspace"])[config["workspaceFolder"]] == ".."
    assert config["postCreateCommand"] == "bash devcontainer/post-create.sh"
    assert (ROOT / "devcontainer" / "post-create.sh").is_file()
    extensions = config["customizations"]["vscode"]["extensions"]
    assert extensions == ["ms-python.python", "ms-python.debugpy", "splice.splice-vscode"]


def test_forwarded_ports_are_the_ports_the_cluster_listens_on() -> None:
    env = _provision_env()
    expected = {
        f"haproxy:{env['SPLICE_LB_PORT']}",
        f"server1:{env['SPLICE_SERVER1_PORT']}",
        f"server2:{env['SPLICE_SERVER2_PORT']}",
    }
    config = _devcontainer()
    assert set(config["forwardPorts"]) == expected
    assert set(config["portsAttributes"]) == expected
    assert env["SPLICE_SERVER1_HOST"] == "server1"
    assert env["SPLICE_SERVER2_HOST"] == "server2"


def test_every_wait_is_a_health_or_completion_condition() -> None:
    services = _compose()["services"]
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dependency == "provision" else "service_healthy"
            assert condition == {"condition": wanted}, (name, dependency)
        command = " ".join(service.get("command", []))
        assert "sleep" not in command or name == "workspace", name  # the workspace's keep-alive only
    assert services["provision"]["restart"] == "no"
    assert set(services["workspace"]["depends_on"]) == {"haproxy", "scheduler"}


def test_cluster_volume_and_project_mounts() -> None:
    compose = _compose()
    services = compose["services"]
    assert "cluster" in compose["volumes"]
    for name in (*CLUSTER_PARTS, "workspace"):
        assert _mounts(services[name])["/cluster"] == "cluster", name
    env = _provision_env()
    assert env["SPLICE_CLUSTER_DIR"] == "/cluster"
    for name in ("provision", "server1", "server2", "scheduler"):
        assert _mounts(services[name])[env["SPLICE_PROJECT_DIR"]] == "${SPLICE_PROJECT_DIR:-..}", name


def test_commands_and_health_checks_match_what_provision_creates() -> None:
    services = _compose()["services"]
    env = _provision_env()
    for name in ("server1", "server2"):
        assert services[name]["command"] == ["splice", "server", "run", "/cluster", "--server", name]
        url = f"http://{env[f'SPLICE_{name.upper()}_HOST']}:{env[f'SPLICE_{name.upper()}_PORT']}/splice/ping"
        assert services[name]["healthcheck"]["test"][-1] == url
    assert services["scheduler"]["command"] == ["splice", "scheduler", "run", "/cluster", "--name", "scheduler1"]
    assert services["haproxy"]["command"][-1] == "/cluster/load-balancer/haproxy.cfg"
    assert f"127.0.0.1:{env['SPLICE_LB_PORT']}/haproxy/alive" in services["haproxy"]["healthcheck"]["test"][-1]


def test_debug_ports_are_published_on_the_host_loopback_only() -> None:
    services = _compose()["services"]
    env = _provision_env()
    assert env["SPLICE_DEBUG_ENABLED"] == "true"
    first = int(env["SPLICE_DEBUG_PORT"])
    for index, name in enumerate(("server1", "server2")):
        assert services[name]["ports"] == [f"127.0.0.1:{first + index}:{first + index}"]
    assert all("ports" not in services[name] for name in services if name not in ("server1", "server2"))


# -- provision.sh and the cluster it makes, run here -----------------------------------------------------------


class Processes:
    """The processes a test started: each stopped by its pid (SIGTERM, then SIGKILL to its own group)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], cwd: Path) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            self.started[name] = subprocess.Popen(
                args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs.glob("*.log"))

    def stop(self) -> None:
        for process in self.started.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _wait(what: str, check: Any, processes: Processes, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError, KeyError):
            value = check()
            if value:
                return value
        for name, process in processes.started.items():
            assert process.poll() is None, f"{name} exited {process.returncode}:\n{processes.tail()}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s\n{processes.tail()}"
        time.sleep(0.1)


def _psql(*args: str) -> None:
    subprocess.run([*args, "-h", "127.0.0.1", "-U", "postgres"], check=True, capture_output=True, timeout=60)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"splice_dc_{secrets.token_hex(4)}"
    _psql("createdb", name)
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        _psql("dropdb", "--if-exists", "--force", name)


def _provision(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEVCONTAINER / "provision.sh")], env=env, capture_output=True, text=True, timeout=180
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


SERVICE = '''\
import os

from splice.server import Service


class Where(Service):
    """Which server process answered."""

    name = "dc.where"

    def handle(self) -> None:
        self.response.payload = {"pid": os.getpid()}
'''


@pytest.mark.skipif(find_haproxy() is None, reason="haproxy is not installed")
def test_provision_brings_up_a_cluster_answering_through_haproxy(tmp_path: Path, database: str) -> None:
    base = free_ports(5)
    lb_port, port1, port2, debug_port = base, base + 1, base + 2, base + 3
    cluster, project = tmp_path / "cluster", tmp_path / "project"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **_provision_env(),  # what the compose file sets, then what differs on one host
        "SPLICE_ODB": database,
        "SPLICE_REDIS": REDIS,
        "SPLICE_CLUSTER_DIR": str(cluster),
        "SPLICE_CLUSTER_NAME": f"dc_{secrets.token_hex(4)}",  # its own Redis bus channel
        "SPLICE_PROJECT_DIR": str(project),
        "SPLICE_SERVER1_HOST": "127.0.0.1",
        "SPLICE_SERVER1_PORT": str(port1),
        "SPLICE_SERVER2_HOST": "127.0.0.1",
        "SPLICE_SERVER2_PORT": str(port2),
        "SPLICE_LB_HOST": "127.0.0.1",
        "SPLICE_LB_PORT": str(lb_port),
        "SPLICE_DEBUG_HOST": "127.0.0.1",  # this machine's other addresses are not a compose network
        "SPLICE_DEBUG_PORT": str(debug_port),
    }
    first = _provision(env)
    assert first.returncode == 0, first.stdout + first.stderr
    made = (cluster / "cluster.toml").read_text(encoding="utf-8")
    again = _provision(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (cluster / "cluster.toml").read_text(encoding="utf-8") == made, "provision.sh is not idempotent"
    assert "server2 is there" in again.stdout

    processes = Processes(tmp_path)
    splice = str(BIN / "splice")
    try:
        # As the containers run them: one command each, in the directory compose.yaml's working_dir names.
        for name in ("server1", "server2"):
            processes.start(name, [splice, "server", "run", str(cluster), "--server", name], cluster / name)
        for port in (port1, port2):
            _wait(f"ping :{port}", lambda p=port: httpx.get(f"http://127.0.0.1:{p}/splice/ping").is_success, processes)
        processes.start("scheduler", [splice, "scheduler", "run", str(cluster), "--name", "scheduler1"], cluster)
        lb_dir = cluster / "load-balancer"
        processes.start("haproxy", [str(find_haproxy()), "-W", "-db", "-f", str(lb_dir / "haproxy.cfg")], lb_dir)
        lb = f"http://127.0.0.1:{lb_port}"
        _wait("HAProxy alive", lambda: httpx.get(f"{lb}/haproxy/alive").is_success, processes)
        healthcheck = [sys.executable, str(DEVCONTAINER / "healthcheck.py")]
        _wait(
            "scheduler health check",
            lambda: subprocess.run([*healthcheck, "--scheduler", str(cluster), "scheduler1"]).returncode == 0,
            processes,
        )
        assert subprocess.run([*healthcheck, f"http://127.0.0.1:{port1}/splice/ping"]).returncode == 0

        token = (cluster / "admin-token").read_text().strip()
        admin = httpx.Client(base_url=lb, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        with admin:
            deployed = admin.post(
                "/splice/admin/deploy", json={"modules": [{"path": "dc/where.py", "source": SERVICE}]}
            ).json()
            assert deployed["status"] == "deployed", deployed
            assert {s.get("name", s.get("server")) for s in deployed["servers"]} == {"server1", "server2"}, deployed
            admin.post("/splice/admin/channels", json={"name": "where", "path": "/where", "service": "dc.where"})
            pids = _wait(
                "answers from both servers through HAProxy",
                lambda: len(found := {httpx.get(f"{lb}/where").json()["pid"] for _ in range(6)}) == 2 and found,
                processes,
            )
            assert pids == {processes.started["server1"].pid, processes.started["server2"].pid}

            # The project folder is the pickup directory: a file saved there is deployed everywhere.
            (project / "dc").mkdir(parents=True)
            (project / "dc" / "picked.py").write_text(SERVICE.replace('"dc.where"', '"dc.picked"'), encoding="utf-8")
            names = lambda: {s["name"] for s in admin.get("/splice/admin/services").json()["services"]}  # noqa: E731
            _wait("pickup deploy", lambda: "dc.picked" in names(), processes)

            jobs = admin.get("/splice/admin/jobs").json()
            assert jobs["scheduler"]["name"].startswith("scheduler1"), jobs

        status = subprocess.run([splice, "status", str(cluster), "--json"], capture_output=True, text=True, timeout=60)
        assert [s["name"] for s in json.loads(status.stdout)["schedulers"]] == ["scheduler1"]

        info = subprocess.run(
            [splice, "debug", "info", str(cluster), "--json"], capture_output=True, text=True, timeout=60, check=True
        )
        points = json.loads(info.stdout)["attach_points"]
        assert [(p["server"], p["port"]) for p in points] == [("server1", debug_port), ("server2", debug_port + 1)]
        assert _listening(debug_port)
        assert _listening(debug_port + 1)

        workspace = tmp_path / "workspace"
        workspace.mkdir()
        launch = post_create(cluster, workspace, env)
        connects = {c["name"]: c["connect"] for c in launch["configurations"]}
        assert connects == {
            "Splice: attach to server1": {"host": "127.0.0.1", "port": debug_port},
            "Splice: attach to server2": {"host": "127.0.0.1", "port": debug_port + 1},
        }
    finally:
        processes.stop()
    assert all(p.poll() is not None for p in processes.started.values())


def post_create(cluster: Path, workspace: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Run post-create.sh as the workspace container does (Splice already installed); answer the launch.json."""
    created = subprocess.run(
        ["bash", str(DEVCONTAINER / "post-create.sh")],
        env={
            **env,
            "SPLICE_CLUSTER": str(cluster),
            "SPLICE_WORKSPACE": str(workspace),
            "SPLICE_SKIP_INSTALL": "1",
            "SPLICE_PYTHON": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    launch: dict[str, Any] = json.loads((workspace / ".vscode" / "launch.json").read_text(encoding="utf-8"))
    return launch


def test_post_create_points_launch_json_at_the_server_containers(tmp_path: Path) -> None:
    cluster, workspace = tmp_path / "cluster", tmp_path / "workspace"
    cluster.mkdir()
    workspace.mkdir()
    (cluster / "cluster.toml").write_text(
        '[cluster]\nname = "devcluster"\nodb = "postgresql+asyncpg://postgres@postgres:5432/splice"\n\n'
        '[debug]\nenabled = true\nhost = "0.0.0.0"\nport = 5680\nallow_remote = true\n\n'
        '[[servers]]\nname = "server1"\nhost = "server1"\nport = 17011\n\n'
        '[[servers]]\nname = "server2"\nhost = "server2"\nport = 17012\n',
        encoding="utf-8",
    )
    launch = post_create(cluster, workspace, {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert {c["name"]: c["connect"] for c in launch["configurations"]} == {
        "Splice: attach to server1": {"host": "server1", "port": 5680},
        "Splice: attach to server2": {"host": "server2", "port": 5681},
    }
    remote_roots = [c["pathMappings"][0]["remoteRoot"] for c in launch["configurations"]]
    assert remote_roots == [str(cluster / f"server{n}" / "work" / "deployed") for n in (1, 2)]
    assert launch["compounds"][0]["name"] == "Splice: attach to cluster"
