"""Debugging a server of two workers: each worker listens on its own attach point (``port``, ``port + 100``),
``splice debug enable``/``info`` reach both through the shared port, a breakpoint hits whichever worker takes
the request (a DAP client attached to each), and ``splice debug disable`` restarts one worker at a time while the
other serves the port.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from splice.server.settings import WORKER_PORT_STEP
from tests.conftest import Cluster, free_ports, running, splice
from tests.dap import DapClient, DapError, attached, greet_as_pycharm
from tests.e2e.test_debug import ONLY_ITS_THREAD, deploy, listening

SOURCE = textwrap.dedent(
    """
    import os

    from splice.server import Service


    class Where(Service):
        name = "dbg.where"

        async def handle(self):
            pid = os.getpid()
            self.response.payload = {"pid": pid}
    """
)
BREAK_LINE = 12


def two_workers(tmp_path: Path) -> tuple[Cluster, int]:
    directory = tmp_path / "cluster"
    port = free_ports(2)
    splice("quickstart", "create", str(directory), "--port", str(port), "--servers", "1", "--workers", "2",
           "--no-load-balancer", "--no-dashboard")  # fmt: skip
    debug_port = free_ports(1)
    while any(listening(p) for p in (debug_port, debug_port + WORKER_PORT_STEP)):
        debug_port = free_ports(1)
    with (directory / "cluster.toml").open("a") as config:
        config.write(f"\n[debug]\nport = {debug_port}\n")
    token = (directory / "admin-token").read_text().strip()
    url = f"http://127.0.0.1:{port + 1}"
    return Cluster(directory, url, token, [url], None), debug_port


def stopped_in_either(clients: list[DapClient], seconds: float = 30.0) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for index, client in enumerate(clients):
            try:
                return index, client.event("stopped", timeout=0.1)
            except DapError:
                continue
    raise AssertionError("no worker stopped at the breakpoint")


def test_each_worker_has_an_attach_point_and_a_breakpoint_hits_whichever_takes_the_request(tmp_path: Path) -> None:
    project = tmp_path / "project"
    file = project / "dbg" / "where.py"
    file.parent.mkdir(parents=True)
    file.write_text(SOURCE)
    assert file.read_text().splitlines()[BREAK_LINE - 1].strip().startswith("self.response.payload")
    made, port = two_workers(tmp_path)
    with running(made) as cluster:
        deploy(cluster, project, file)
        splice("channel", "create", "--cluster", str(cluster.directory), "--name", "where", "--path", "/where",
               "--service", "dbg.where")  # fmt: skip
        enabled = splice("debug", "enable", str(cluster.directory)).stdout
        assert f"server1 worker 1: debugpy on 127.0.0.1:{port} " in enabled
        assert f"server1 worker 2: debugpy on 127.0.0.1:{port + WORKER_PORT_STEP} " in enabled
        info = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)
        points = info["attach_points"]
        assert [(p["server"], p["worker"], p["member"], p["port"]) for p in points] == [
            ("server1", 1, "server1.w1", port),
            ("server1", 2, "server1.w2", port + WORKER_PORT_STEP),
        ]
        for point in points:
            worker_dir = cluster.directory / "server1" / "workers" / str(point["worker"])
            assert point["remote_root"] == str(worker_dir / "work" / "deployed")
            assert point["pid"] == json.loads((worker_dir / "worker.json").read_text())["pid"]
            assert listening(point["port"])

        hit: dict[int, int] = {}
        with (
            attached(
                "127.0.0.1",
                points[0]["port"],
                [{"localRoot": str(project), "remoteRoot": points[0]["remote_root"]}],
                {str(file): [BREAK_LINE]},
                ONLY_ITS_THREAD,
            ) as (first, _),
            attached(
                "127.0.0.1",
                points[1]["port"],
                [{"localRoot": str(project), "remoteRoot": points[1]["remote_root"]}],
                {str(file): [BREAK_LINE]},
                ONLY_ITS_THREAD,
            ) as (second, _),
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            for _ in range(40):  # new connections through the shared port until each worker took one
                call = pool.submit(httpx.get, f"{cluster.url}/where", timeout=60)
                index, stopped = stopped_in_either([first, second])
                client = (first, second)[index]
                frame = client.locals_of_top_frame(int(stopped["threadId"]))
                assert frame["<source>"].endswith("where.py")
                client.resume(int(stopped["threadId"]))
                answer = call.result(timeout=30).json()
                assert answer["pid"] == points[index]["pid"]  # the worker that stopped is the one that answered
                hit[index] = hit.get(index, 0) + 1
                if len(hit) == 2:
                    break
            assert sorted(hit) == [0, 1], hit

        disabled = splice("debug", "disable", str(cluster.directory)).stdout
        lines = disabled.splitlines()
        first_back = lines.index(next(line for line in lines if line.startswith("server1 worker 1: restarted")))
        assert any(line.startswith("server1 worker 2: debugging off") for line in lines[first_back:])  # in turn
        assert "server1 worker 2: restarted without debugpy" in disabled
        assert not listening(port)
        assert not listening(port + WORKER_PORT_STEP)
        assert httpx.get(f"{cluster.url}/where", timeout=10).status_code == 200
        after = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)
        assert after["attach_points"] == []


def test_every_worker_connects_to_pycharms_debug_server(tmp_path: Path) -> None:
    """A listener stands in for PyCharm's "Python Debug Server" (as in ``test_debug.py``): both workers connect."""
    made, _ = two_workers(tmp_path)
    with socket.socket() as ide, running(made) as cluster:
        ide.bind(("127.0.0.1", 0))
        ide.listen(2)
        ide.settimeout(30)
        port = ide.getsockname()[1]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            command = pool.submit(splice, "debug", "pycharm", str(cluster.directory), "--port", str(port), check=False)
            connections = []
            for _ in range(2):  # the worker that took the call, then its sibling
                connection, _ = ide.accept()
                connections.append(connection)
                greet_as_pycharm(connection)
            connected = command.result(timeout=60)
            assert connected.returncode == 0, connected.stderr
            assert f"connected to PyCharm's debug server at 127.0.0.1:{port}" in connected.stdout
            off = splice("debug", "pycharm", str(cluster.directory), "--disconnect").stdout
            assert "server1: debugging off" in off
            for connection in connections:
                connection.close()
        assert httpx.get(f"{cluster.url}/splice/ping", timeout=5).status_code == 200


def test_debugging_enabled_in_the_configuration_listens_in_every_worker_from_the_start(tmp_path: Path) -> None:
    made, port = two_workers(tmp_path)
    with (made.directory / "cluster.toml").open("a") as config:
        config.write("enabled = true\n")  # appended to the [debug] table
    with running(made) as cluster:
        points = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)["attach_points"]
        assert [(p["worker"], p["port"]) for p in points] == [(1, port), (2, port + WORKER_PORT_STEP)]
        assert all(listening(p["port"]) for p in points)
        kept = splice("debug", "disable", str(cluster.directory), check=False)
        assert kept.returncode == 1
        assert "cluster.toml says [debug] enabled = true" in kept.stderr
        assert all(listening(p["port"]) for p in points)


def test_debug_disable_restarts_one_worker_at_a_time_and_no_request_to_the_server_fails(tmp_path: Path) -> None:
    made, port = two_workers(tmp_path)
    with running(made) as cluster:
        splice("debug", "enable", str(cluster.directory))
        assert listening(port)
        assert listening(port + WORKER_PORT_STEP)
        answered: list[int] = []
        failures: list[str] = []
        done = threading.Event()

        def load() -> None:
            while not done.is_set() and len(failures) < 20:
                try:  # a new connection each time, as a balancer's checks and many clients make them
                    answered.append(httpx.get(f"{cluster.url}/splice/ping", timeout=10).status_code)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

        loader = threading.Thread(target=load)
        loader.start()
        try:
            disabled = splice("debug", "disable", str(cluster.directory)).stdout
        finally:
            done.set()
            loader.join(30)
        assert "server1 worker 1: restarted without debugpy" in disabled
        assert "server1 worker 2: restarted without debugpy" in disabled
        assert not failures, f"{len(failures)} of {len(answered) + len(failures)} requests failed: {failures[:3]}"
        assert set(answered) == {200}
        assert len(answered) >= 20
        assert not listening(port)
        assert not listening(port + WORKER_PORT_STEP)
