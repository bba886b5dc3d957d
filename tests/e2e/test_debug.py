"""Remote debugging as an editor does it: a DAP client attaches to a running server's debugpy attach point,
sets a breakpoint on the user's own file (the local path, mapped onto the server's deployed directory),
and the service called over REST stops there, also after it was deployed again.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import textwrap
from pathlib import Path

import httpx

from tests.conftest import Cluster, eventually, free_ports, make_cluster, running, splice
from tests.dap import DapClient, attached, greet_as_pycharm

SOURCE = textwrap.dedent(
    """
    from splice.server import Service

    VERSION = {version}


    class Greet(Service):
        name = "debug.greet"

        {kind}def handle(self):
            who = self.request.query.get("who", "world")
            greeting = f"hello {{who}} v{{VERSION}}"
            self.response.payload = {{"greeting": greeting}}
    """
)
BREAK_LINE = 13  # self.response.payload = ... (greeting is set by then)
ONLY_ITS_THREAD = {"stopAllThreadsOnSuspend": False}
"""What ``splice vscode launch`` writes into each configuration: a breakpoint stops its own thread only."""


def write_service(project: Path, version: int, kind: str = "") -> Path:
    path = project / "shop" / "greet.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SOURCE.format(version=version, kind=kind))
    assert path.read_text().splitlines()[BREAK_LINE - 1].strip().startswith("self.response.payload")
    return path


def debug_cluster(tmp_path: Path) -> Cluster:
    made = make_cluster(tmp_path / "cluster")
    with (made.directory / "cluster.toml").open("a") as config:
        config.write(f"\n[debug]\nport = {free_ports(1)}\n")
    return made


def deploy(cluster: Cluster, project: Path, file: Path) -> None:
    splice("deploy", str(file), "--cluster", str(cluster.directory), "--root", str(project))


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_at_breakpoint(client: DapClient, url: str, expected: str) -> httpx.Response:
    """Call the channel; it stops at the breakpoint; read ``greeting``, check the server still pings; continue."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(httpx.get, f"{url}/greet", params={"who": "ada"}, timeout=60)
        stopped = client.event("stopped", timeout=30)
        assert stopped["reason"] == "breakpoint"
        frame = client.locals_of_top_frame(stopped["threadId"])
        assert frame["greeting"] == repr(expected)
        assert frame["<line>"] == str(BREAK_LINE)
        assert not call.done()  # its request waits at the breakpoint...
        assert httpx.get(f"{url}/splice/ping", timeout=5).status_code == 200  # ...and only that one
        client.resume(stopped["threadId"])
        return call.result(timeout=30)


def test_a_breakpoint_on_the_local_file_stops_the_running_service_also_after_a_redeploy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    file = write_service(project, 1)
    with running(debug_cluster(tmp_path)) as cluster:
        deploy(cluster, project, file)
        splice("channel", "create", "--cluster", str(cluster.directory), "--name", "greet", "--path", "/greet",
               "--service", "debug.greet")  # fmt: skip
        enabled = splice("debug", "enable", str(cluster.directory)).stdout
        assert "server1: debugpy on 127.0.0.1:" in enabled
        info = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)
        (point,) = info["attach_points"]
        assert point["server"] == "server1"
        assert point["host"] == "127.0.0.1"
        assert point["remote_root"] == str(cluster.directory / "server1" / "work" / "deployed")
        assert point["pid"] == int((cluster.directory / "server1" / "server.pid").read_text())
        mapping = [{"localRoot": str(project), "remoteRoot": point["remote_root"]}]

        breakpoints = {str(file): [BREAK_LINE]}
        with attached(point["host"], point["port"], mapping, breakpoints, ONLY_ITS_THREAD) as (client, verified):
            assert [b["line"] for b in verified[str(file)]] == [BREAK_LINE]
            answer = stop_at_breakpoint(client, cluster.url, "hello ada v1")
            assert answer.json() == {"greeting": "hello ada v1"}

            deploy(cluster, project, write_service(project, 2))  # the same file, deployed again
            answer = stop_at_breakpoint(client, cluster.url, "hello ada v2")
            assert answer.json() == {"greeting": "hello ada v2"}

        # Detached: the service runs straight through.
        assert httpx.get(f"{cluster.url}/greet", timeout=10).json() == {"greeting": "hello world v2"}

        pid = point["pid"]
        disabled = splice("debug", "disable", str(cluster.directory)).stdout
        assert "server1: debugging off; restarting without debugpy" in disabled
        eventually(lambda: not listening(point["port"]), 15)
        back = eventually(lambda: httpx.get(f"{cluster.url}/splice/admin/server", headers=_auth(cluster)).json(), 15)
        assert isinstance(back, dict)
        assert back["pid"] == pid  # restarted in place: splice stop and status still know it
        assert "debugging off (would listen on" in splice("debug", "info", str(cluster.directory)).stdout
        assert httpx.get(f"{cluster.url}/greet", timeout=10).json() == {"greeting": "hello world v2"}


def test_a_breakpoint_in_an_async_service_holds_up_only_its_own_request(tmp_path: Path) -> None:
    """While debugging, ``async def handle`` runs on a loop of its own (more in ``test_debug_async.py``)."""
    project = tmp_path / "project"
    file = write_service(project, 1, kind="async ")
    with running(debug_cluster(tmp_path)) as cluster:
        deploy(cluster, project, file)
        splice("channel", "create", "--cluster", str(cluster.directory), "--name", "greet", "--path", "/greet",
               "--service", "debug.greet")  # fmt: skip
        splice("debug", "enable", str(cluster.directory))
        (point,) = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)["attach_points"]
        mapping = [{"localRoot": str(project), "remoteRoot": point["remote_root"]}]
        with attached(point["host"], point["port"], mapping, {str(file): [BREAK_LINE]}, ONLY_ITS_THREAD) as (client, _):
            answer = stop_at_breakpoint(client, cluster.url, "hello ada v1")  # pings 200 while it is paused
            assert answer.json() == {"greeting": "hello ada v1"}


def test_with_debugging_off_nothing_listens_and_other_addresses_are_refused(tmp_path: Path) -> None:
    made = debug_cluster(tmp_path)
    port = int((made.directory / "cluster.toml").read_text().rsplit("port = ", 1)[1].split()[0])
    with running(made) as cluster:
        assert not listening(port)
        refused = splice("debug", "enable", str(cluster.directory), "--host", "0.0.0.0", check=False)
        assert refused.returncode == 1
        assert "refusing to listen on '0.0.0.0': only the loopback" in refused.stderr
        assert "allow_remote = true" in refused.stderr
        assert not listening(port)
    with (made.directory / "cluster.toml").open("a") as config:
        config.write('host = "0.0.0.0"\n')  # appended to the [debug] table
    started = splice("start", str(made.directory), check=False)
    assert started.returncode == 1
    assert started.stderr.count("\n") == 1
    assert "debug.host" in started.stderr
    assert "'0.0.0.0' is not the loopback" in started.stderr


def test_a_taken_attach_point_is_refused_naming_it_instead_of_hanging(tmp_path: Path) -> None:
    made = debug_cluster(tmp_path)
    port = int((made.directory / "cluster.toml").read_text().rsplit("port = ", 1)[1].split()[0])
    with socket.socket() as holder, running(made) as cluster:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        refused = splice("debug", "enable", str(cluster.directory), check=False)  # debugpy alone waited for ever
        assert refused.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use (another process holds it" in refused.stderr
        assert httpx.get(f"{cluster.url}/splice/ping", timeout=5).status_code == 200


def _auth(cluster: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token}"}


def test_each_server_connects_to_pycharms_debug_server_and_answers_its_handshake(tmp_path: Path) -> None:
    """A listener stands in for PyCharm's "Python Debug Server": pydevd's first exchange is the IDE's
    CMD_VERSION (501) and the process's answer with its own version; the IDE's CMD_RUN (101) lets it go on."""
    with socket.socket() as ide, running(debug_cluster(tmp_path)) as cluster:
        ide.bind(("127.0.0.1", 0))
        ide.listen(1)
        ide.settimeout(30)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            command = pool.submit(
                splice, "debug", "pycharm", str(cluster.directory), "--port", str(ide.getsockname()[1]), check=False
            )
            connection, _ = ide.accept()
            with connection:
                greet_as_pycharm(connection)
                connected = command.result(timeout=30)
                assert connected.returncode == 0, connected.stderr
                assert f"server1: connected to PyCharm's debug server at 127.0.0.1:{ide.getsockname()[1]}" in (
                    connected.stdout
                )
                # One debugger at a time: debugpy is refused while PyCharm's is connected.
                refused = splice("debug", "enable", str(cluster.directory), check=False)
                assert refused.returncode == 1
                assert "connected to PyCharm's debug server; disconnect it first" in refused.stderr
                off = splice("debug", "pycharm", str(cluster.directory), "--disconnect").stdout
                assert "server1: debugging off" in off
        assert httpx.get(f"{cluster.url}/splice/ping", timeout=5).status_code == 200
        missing_port = splice("debug", "pycharm", str(cluster.directory), check=False)
        assert missing_port.returncode == 2
        assert "--port" in missing_port.stderr


def test_debugging_enabled_in_the_configuration_listens_from_the_start(tmp_path: Path) -> None:
    made = debug_cluster(tmp_path)
    with (made.directory / "cluster.toml").open("a") as config:
        config.write("enabled = true\n")  # appended to the [debug] table
    with running(made) as cluster:
        (point,) = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)["attach_points"]
        assert listening(point["port"])
        kept = splice("debug", "disable", str(cluster.directory), check=False)
        assert kept.returncode == 1
        assert "cluster.toml says [debug] enabled = true" in kept.stderr
        assert listening(point["port"])
