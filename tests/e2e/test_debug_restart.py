"""Turning debugging off restarts the servers (debugpy cannot stop listening) without a failed request through the
balancer: one server at a time, each drained from HAProxy first and back in it before the next; and an attach
point asked to move to another address says it cannot."""

from __future__ import annotations

import collections
import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Cluster, eventually, free_ports, make_cluster, running, splice

SERVICE = """
from splice.server import Service


class Hello(Service):
    name = "debug.hello"

    def handle(self):
        self.response.payload = {"hello": "world"}
"""
REQUESTS = 200


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, int]]:
    """Two servers behind HAProxy, a channel ``/hello``; debugpy attach points on ``port`` and ``port + 1``."""
    tmp = tmp_path_factory.mktemp("debug-restart")
    made = make_cluster(tmp / "cluster", servers=2, load_balancer=True)
    port = free_ports(2)
    with (made.directory / "cluster.toml").open("a") as config:
        config.write(f"\n[debug]\nport = {port}\n")
    project = tmp / "project"
    (project / "shop").mkdir(parents=True)
    (project / "shop" / "hello.py").write_text(SERVICE)
    with running(made) as started:
        directory = str(started.directory)
        splice("deploy", str(project / "shop" / "hello.py"), "--cluster", directory, "--root", str(project))
        splice("channel", "create", "--cluster", directory, "--name", "hello", "--path", "/hello",
               "--service", "debug.hello")  # fmt: skip
        yield started, port


def test_debug_disable_restarts_one_server_at_a_time_and_no_request_through_the_balancer_fails(
    cluster: tuple[Cluster, int],
) -> None:
    made, port = cluster
    assert made.load_balancer is not None
    balancer = made.load_balancer
    directory = str(made.directory)
    splice("debug", "enable", directory)
    assert listening(port)
    assert listening(port + 1)
    pids = [p["pid"] for p in json.loads(splice("debug", "info", directory, "--json").stdout)["attach_points"]]
    assert len(pids) == 2

    statuses: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=balancer, timeout=30) as client:
            while (not done.is_set() or sum(statuses.values()) < REQUESTS) and len(failures) < REQUESTS:
                try:
                    answer = client.get("/hello")
                    statuses[str(answer.status_code)] += 1
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code}: {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    failures.append(repr(exc))

    loader = threading.Thread(target=load)
    loader.start()
    try:
        eventually(lambda: statuses["200"] >= 20, 30)  # the load runs before the restarts begin
        disabled = splice("debug", "disable", directory)
    finally:
        done.set()
        loader.join(120)
    assert not failures, f"{len(failures)} of {sum(statuses.values())} requests failed: {failures[:5]}"
    assert sum(statuses.values()) >= REQUESTS
    out = disabled.stdout
    assert out.index("server1: restarted without debugpy") < out.index("server2: debugging off")  # one at a time
    assert "server2: restarted without debugpy" in out
    assert "back in HAProxy" in out
    assert not listening(port)
    assert not listening(port + 1)
    info = json.loads(splice("debug", "info", directory, "--json").stdout)
    assert info["attach_points"] == []
    assert [s["configured"]["pid"] for s in info["servers"]] == pids  # restarted in place


def test_enable_with_another_host_while_listening_says_the_attach_point_cannot_move(
    cluster: tuple[Cluster, int],
) -> None:
    made, port = cluster
    directory = str(made.directory)
    splice("debug", "enable", directory)
    try:
        moved = splice("debug", "enable", directory, "--host", "::1", check=False)
        assert moved.returncode == 1
        assert f"server1: debugpy already listens on 127.0.0.1:{port} and cannot move to ::1" in moved.stderr
        assert "splice debug disable" in moved.stderr
        assert "splice debug enable --host ::1" in moved.stderr
        # The remote-host rule still holds first: a non-loopback address is refused as before.
        remote = splice("debug", "enable", directory, "--host", "0.0.0.0", check=False)
        assert remote.returncode == 1
        assert "refusing to listen on '0.0.0.0': only the loopback" in remote.stderr
        # The same host (or none) is what it already does.
        assert "debugpy on 127.0.0.1:" in splice("debug", "enable", directory, "--host", "127.0.0.1").stdout
    finally:
        splice("debug", "disable", directory)
    assert not listening(port)
