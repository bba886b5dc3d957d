"""The real HAProxy in front of real servers: spread, health checks, JSON 503, reloads that drop nothing.

Clusters are made by ``splice quickstart create`` and run by ``splice start``; HAProxy is the Debian
package's. A deployed service answers with the name of the server it runs on: a deployed module runs
from ``DIR/<server>/work/deployed/``, so its ``__file__`` says where it is (and ``os.getpid()`` which
process).
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import Cluster, alive, eventually, free_port, free_ports, make_cluster, splice

WHO = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    from splice.server import Service


    class Who(Service):
        """Which server answers: DIR/<server>/work/deployed/who.py names it."""

        name = "lb.who"

        def handle(self):
            self.response.payload = {"server": Path(__file__).parents[2].name, "pid": os.getpid()}
    '''
)


WHERE = textwrap.dedent(
    '''
    from pathlib import Path

    from splice.server import Service


    class Where(Service):
        """Answers a WebSocket message with what came, which server and which connection."""

        name = "lb.ws-where"

        async def handle(self):
            server = Path(__file__).parents[2].name
            self.response.payload = {"got": self.request.payload, "server": server, "id": self.websocket.id}
    '''
)


def haproxy_processes(directory: Path) -> list[int]:
    """Every live HAProxy process run with this cluster's configuration (what the test started)."""
    config = str(directory.resolve() / "load-balancer" / "haproxy.cfg").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if config in args and state != "Z":
            found.append(int(entry.name))
    return found


def stop_everything(made: Cluster) -> None:
    splice("stop", str(made.directory), check=False)
    for pid in haproxy_processes(made.directory):  # only if stop failed: never leave one behind
        os.kill(pid, signal.SIGKILL)


def status(directory: Path) -> tuple[int, dict]:
    result = splice("status", str(directory), "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def deploy_who(made: Cluster) -> None:
    with made.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "who.py", "source": WHO}]})
    assert answer.status_code == 200, answer.text
    splice(
        "channel", "create", "--cluster", str(made.directory), "--name", "who", "--path", "/who", "--service", "lb.who"
    )
    for url in made.urls:
        eventually(lambda url=url: httpx.get(f"{url}/who", timeout=5).status_code == 200)


def haproxy_view(directory: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """HAProxy's own view of each server (UP, DOWN, ...; not how far it is on its way), from its stats socket."""
    monkeypatch.chdir(directory / "load-balancer")  # the socket's path is relative: a unix path is short
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect("haproxy.sock")
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    rows = csv.DictReader(data.decode().removeprefix("# ").splitlines())
    servers = [row for row in rows if row["pxname"] == "servers" and row["svname"] != "BACKEND"]
    return {row["svname"]: row["status"].split()[0] for row in servers}  # "UP 1/2": up, one check failed


@pytest.fixture
def balanced(tmp_path: Path) -> Iterator[Cluster]:
    """Three started servers behind a started HAProxy, running ``lb.who`` on ``/who``."""
    made = make_cluster(tmp_path / "cluster", servers=3, load_balancer=True)
    try:
        started = splice("start", str(made.directory))
        assert f"load-balancer started: {made.load_balancer}" in started.stdout
        deploy_who(made)
        yield made
    finally:
        stop_everything(made)


def test_requests_through_haproxy_spread_over_every_server(balanced: Cluster) -> None:
    answers = [httpx.get(f"{balanced.load_balancer}/who", timeout=10) for _ in range(30)]
    assert {a.status_code for a in answers} == {200}
    counts = Counter(a.json()["server"] for a in answers)
    assert sorted(counts) == ["server1", "server2", "server3"]
    assert min(counts.values()) >= 5, counts  # round robin, not one favourite
    # Each answer came from the process `splice status` names for that server.
    code, state = status(balanced.directory)
    assert code == 0
    pids = {s["name"]: s["pid"] for s in state["servers"]}
    assert {a.json()["server"]: a.json()["pid"] for a in answers} == pids
    assert [sorted(s) for s in state["servers"]] == [["healthy", "name", "pid", "url"]] * 3
    balancer = state["load_balancer"]
    assert balancer["url"] == balanced.load_balancer
    assert balancer["healthy"] is True
    assert balancer["pid"] in haproxy_processes(balanced.directory)
    text = splice("status", str(balanced.directory)).stdout.splitlines()
    assert text[-1] == f"load-balancer  {balanced.load_balancer}  pid {balancer['pid']}  healthy"

    alive = httpx.get(f"{balanced.load_balancer}/haproxy/alive", timeout=5)
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok", "component": "haproxy"}
    # The admin API works through HAProxy too, and a second start changes nothing.
    with httpx.Client(base_url=balanced.load_balancer, headers={"Authorization": f"Bearer {balanced.token}"}) as api:
        assert "lb.who" in [s["name"] for s in api.get("/splice/admin/services").json()["services"]]
    again = splice("start", str(balanced.directory)).stdout
    assert f"load-balancer already running: {balanced.load_balancer} (pid {balancer['pid']})" in again


def test_websockets_pass_through_haproxy(balanced: Cluster) -> None:
    with balanced.admin() as admin:
        deployed = admin.post("/splice/admin/deploy", json={"modules": [{"path": "where.py", "source": WHERE}]})
        assert deployed.status_code == 200, deployed.text
        channel = {"name": "lb-ws", "kind": "websocket", "path": "/ws", "service": "lb.ws-where"}
        created = admin.post("/splice/admin/channels", json=channel)
        assert created.status_code == 201, created.text
    url = (balanced.load_balancer or "").replace("http://", "ws://") + "/ws"
    servers = set()
    for _ in range(3):
        with connect(url, proxy=None, open_timeout=10) as ws:
            answers = []
            for n in range(3):
                ws.send(json.dumps({"n": n}))
                answers.append(json.loads(ws.recv(timeout=10)))
        assert [a["got"] for a in answers] == [{"n": n} for n in range(3)]
        assert len({(a["server"], a["id"]) for a in answers}) == 1  # one connection, one server
        servers.add(answers[0]["server"])
    assert servers <= {"server1", "server2", "server3"}


def test_every_server_down_answers_json_503_and_haproxy_stays_alive(
    balanced: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb = balanced.load_balancer
    assert haproxy_view(balanced.directory, monkeypatch) == dict.fromkeys(["server1", "server2", "server3"], "UP")
    pids = [s["pid"] for s in status(balanced.directory)[1]["servers"]]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    eventually(lambda: not any(alive(pid) for pid in pids))

    down = httpx.get(f"{lb}/who", timeout=10)
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/json"
    assert down.json() == {"error": {"code": "no_server", "message": "no server of the cluster is up"}}
    # The health checks see them go; the monitor URI still answers: HAProxy itself is fine.
    eventually(lambda: set(haproxy_view(balanced.directory, monkeypatch).values()) == {"DOWN"}, 10)
    assert httpx.get(f"{lb}/who", timeout=10).json()["error"]["code"] == "no_server"
    assert httpx.get(f"{lb}/haproxy/alive", timeout=5).status_code == 200
    code, state = status(balanced.directory)
    assert code == 3
    assert [s["healthy"] for s in state["servers"]] == [False] * 3
    assert state["load_balancer"]["healthy"] is True

    # Back again: the checks bring them in without touching HAProxy.
    haproxy_pid = state["load_balancer"]["pid"]
    splice("start", str(balanced.directory))
    eventually(lambda: set(haproxy_view(balanced.directory, monkeypatch).values()) == {"UP"}, 10)
    assert httpx.get(f"{lb}/who", timeout=10).status_code == 200
    assert status(balanced.directory)[1]["load_balancer"]["pid"] == haproxy_pid

    stopped = splice("stop", str(balanced.directory)).stdout.splitlines()
    assert stopped[0] == "load-balancer stopped"
    assert haproxy_processes(balanced.directory) == []
    assert not (balanced.directory / "load-balancer" / "haproxy.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{lb}/haproxy/alive", timeout=5)


@dataclass
class Load:
    """Clients calling ``/who`` through HAProxy until stopped: fresh connections and keep-alive ones."""

    url: str
    answers: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def fresh(self) -> None:
        parts = urlsplit(self.url)
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
                conn.request("GET", "/who")
                response = conn.getresponse()
                self.record(began, response.status, response.read())
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"fresh: {exc!r}")

    def keep_alive(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    response = client.get(f"{self.url}/who")
                    self.record(began, response.status_code, response.content)
                except httpx.HTTPError as exc:
                    self.failures.append(f"keep-alive: {exc!r}")

    def record(self, began: float, status: int, body: bytes) -> None:
        if status != 200:
            self.failures.append(f"{status}: {body[:200]!r}")
        else:
            self.answers.append((began, json.loads(body)["server"]))

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.fresh) for _ in range(2)]
        self.threads += [threading.Thread(target=self.keep_alive) for _ in range(2)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def wait_for(self, server: str, since: float) -> None:
        eventually(lambda: any(t >= since and s == server for t, s in list(self.answers)), 15)


def test_adding_and_removing_servers_reloads_haproxy_without_a_failed_request(balanced: Cluster) -> None:
    directory = str(balanced.directory)
    first = haproxy_processes(balanced.directory)
    assert len(first) == 1
    with Load(balanced.load_balancer or "") as load:
        load.wait_for("server3", 0)
        port = free_ports(1)
        added = splice("create", "server", directory, "--port", str(port))
        assert f"added server4: http://127.0.0.1:{port}" in added.stdout
        assert "load balancer reloaded: 4 servers" in added.stdout
        reloaded = status(balanced.directory)[1]["load_balancer"]["pid"]
        assert reloaded not in first  # a new HAProxy serves; the old one finishes what it had
        began = time.monotonic()
        assert "server4 started" in splice("start", directory).stdout
        load.wait_for("server4", began)

        removed = splice("remove", "server", directory, "--name", "server1")
        assert removed.stdout.startswith("removed server1 (stopped it)")
        assert "load balancer reloaded: 3 servers" in removed.stdout
        after = time.monotonic()
        for name in ("server2", "server3", "server4"):
            load.wait_for(name, after)
        reloads = {reloaded, status(balanced.directory)[1]["load_balancer"]["pid"]}
        # More reloads, each with a server HAProxy has not seen fail yet: requests sent to it are retried
        # on another server (it never started), and the hand-over of the listeners refuses no client.
        for _ in range(4):
            splice("create", "server", directory, "--name", "spare", "--port", str(free_port()))
            splice("remove", "server", directory, "--name", "spare")
    assert load.failures == []
    assert len(load.answers) > 200, len(load.answers)
    assert "server1" not in {s for t, s in load.answers if t >= after}
    assert len(reloads) == 2
    assert len(haproxy_processes(balanced.directory)) >= 1
    assert [s["name"] for s in status(balanced.directory)[1]["servers"]] == ["server2", "server3", "server4"]

    # stop ends every HAProxy of the cluster, the ones still draining after a reload included.
    splice("stop", directory)
    assert haproxy_processes(balanced.directory) == []
    assert not any(alive(pid) for pid in [*first, *reloads])


def test_create_load_balancer_adds_it_to_a_cluster_and_moves_it(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2)
    config = made.directory / "cluster.toml"
    before = config.read_text()
    port = free_port()
    try:
        created = splice("create", "load-balancer", str(made.directory), "--port", str(port))
        assert created.stdout.startswith(f"load balancer: http://127.0.0.1:{port} (2 servers")
        after = config.read_text()
        # Only the new table: every line the file had is still there, in its place.
        assert after.replace(f'[load_balancer]\nhost = "127.0.0.1"\nport = {port}\n\n', "") == before
        assert (made.directory / "load-balancer" / "haproxy.cfg").is_file()

        splice("start", str(made.directory))
        lb = f"http://127.0.0.1:{port}"
        answers = {httpx.get(f"{lb}/splice/ping", timeout=5).json()["server"] for _ in range(4)}
        assert answers == {"server1", "server2"}

        moved = free_port()
        relocated = splice("create", "load-balancer", str(made.directory), "--port", str(moved))
        assert f"load balancer reloaded: 2 servers behind http://127.0.0.1:{moved}" in relocated.stdout
        assert config.read_text() == after.replace(f"port = {port}\n", f"port = {moved}\n", 1)
        assert httpx.get(f"http://127.0.0.1:{moved}/haproxy/alive", timeout=5).status_code == 200
        eventually(lambda: _refused(lb))
        assert len(haproxy_processes(made.directory)) >= 1
    finally:
        stop_everything(made)
    assert haproxy_processes(made.directory) == []


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/haproxy/alive", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def one_line_error(result: object) -> str:
    assert result.returncode != 0, result  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith("splice: ")
    return lines[0]


def test_refusals_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=1, load_balancer=True)
    directory = str(made.directory)
    config = made.directory / "cluster.toml"
    before = config.read_text()
    port = int(made.url.rsplit(":", 1)[1])
    cases = [
        (("remove", "server", directory, "--name", "server1"), "server1 is the last server"),
        (("remove", "server", directory, "--name", "server7"), "no server named 'server7' (known: server1)"),
        (("create", "server", directory, "--port", str(port)), f"port {port} is server1's"),
        (("create", "server", directory, "--name", "server1"), "already has a server named 'server1'"),
        (("create", "server", directory, "--name", "a b"), "'a b' cannot name a server"),
        (("create", "load-balancer", directory, "--port", str(port)), f"port {port} is server1's"),
    ]
    for args, message in cases:
        assert message in one_line_error(splice(*args, check=False)), args
    assert config.read_text() == before


def test_start_says_so_when_the_load_balancers_port_is_taken(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=1, load_balancer=True)
    port = int((made.load_balancer or "").rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        try:
            result = splice("start", str(made.directory), check=False)
            assert f"{made.load_balancer} is already answering" in one_line_error(result)
            assert status(made.directory)[1]["servers"][0]["healthy"] is True  # the servers run all the same
        finally:
            stop_everything(made)
    assert haproxy_processes(made.directory) == []


def test_start_without_haproxy_says_so_in_one_line_and_runs_the_servers(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2, load_balancer=True)
    haproxy = Path(shutil.which("haproxy") or "/usr/sbin/haproxy")
    empty = tmp_path / "empty"
    empty.mkdir()
    # A mount namespace of this command's own, where HAProxy's directory is empty: no uninstalling needed.
    hide = f"mount --bind {empty} {haproxy.parent} && mount --bind {empty} /usr/sbin"
    command = f'{hide} && PATH="{Path(sys.executable).parent}:/usr/bin:/bin" exec "$@"'
    args = ["unshare", "-m", "sh", "-c", command, "sh", sys.executable, "-m", "splice.server.cli", "start"]
    try:
        result = subprocess.run([*args, str(made.directory)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0 and "splice" not in result.stderr:
            # .ci/run runs as root, where unshare -m works: a machine where it does not must say so, not skip.
            pytest.fail(f"cannot hide haproxy in a mount namespace here: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == (
            f"splice: haproxy is not installed (apt-get install haproxy): no load balancer on {made.load_balancer},"
            " call the servers directly"
        )
        started = [line.split(" started")[0] for line in result.stdout.splitlines()]
        assert started == ["server1", "server2", "scheduler1"]
        code, state = status(made.directory)
        assert code == 3  # the load balancer the configuration asks for is down
        assert [s["healthy"] for s in state["servers"]] == [True, True]
        assert state["load_balancer"] == {"url": made.load_balancer, "pid": None, "healthy": False}
    finally:
        stop_everything(made)
    assert haproxy_processes(made.directory) == []
