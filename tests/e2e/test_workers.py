"""Servers of several worker processes (``[[servers]] workers = 2``): real clusters started by ``splice start``.

Each worker is a cluster member of its own (``server1.w2``) reached at its private URL (``worker.json``), and the
workers of a server share its port. A deploy answers for every worker; a worker killed is started again by its
server's supervisor and catches up from the ODB before it takes requests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import alive, eventually, free_ports, splice

VERSIONED = textwrap.dedent(
    """
    import os
    from splice.server import Service

    class Version(Service):
        name = "demo.version"

        async def handle(self):
            self.response.payload = {{"version": {version}, "pid": os.getpid()}}
    """
)


def create(directory: Path, servers: int, workers: int, redis: str | None = None) -> tuple[list[str], str]:
    """``splice quickstart create --workers``: each server's public URL, and the admin token."""
    port = free_ports(servers + 1)
    splice(
        "quickstart", "create", str(directory), "--port", str(port), "--servers", str(servers),
        "--workers", str(workers), "--no-load-balancer", "--no-dashboard", *(["--redis", redis] if redis else []),
    )  # fmt: skip
    urls = [f"http://127.0.0.1:{port + i}" for i in range(1, servers + 1)]
    return urls, (directory / "admin-token").read_text().strip()


def worker_info(directory: Path, server: str, worker: int) -> dict:
    return json.loads((directory / server / "workers" / str(worker) / "worker.json").read_text())


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def deploy(url: str, token: str, version: int) -> dict:
    body = {"modules": [{"path": "demo.py", "source": VERSIONED.format(version=version)}]}
    answer = httpx.post(f"{url}/splice/admin/deploy", json=body, headers=headers(token), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def invoke(url: str, token: str) -> dict:
    answer = httpx.post(f"{url}/splice/admin/invoke", json={"service": "demo.version"}, headers=headers(token))
    answer.raise_for_status()
    return answer.json()["payload"]


def pids_of(directory: Path, servers: list[str], workers: int) -> list[int]:
    """The supervisors' pids (pid files) and every worker's (worker.json)."""
    pids = [int((directory / s / "server.pid").read_text()) for s in servers]
    return pids + [worker_info(directory, s, k)["pid"] for s in servers for k in range(1, workers + 1)]


def test_two_servers_of_two_workers_deploy_restart_status_stop(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    urls, token = create(directory, servers=2, workers=2)
    assert (directory / "cluster.toml").read_text().count("workers = 2") == 2
    started = splice("start", str(directory))
    servers = ["server1", "server2"]
    try:
        assert started.stdout.count("  worker ") == 4, started.stdout
        every = pids_of(directory, servers, 2)
        # Every one of the four processes answers at its own URL as itself.
        members = {}
        for server in servers:
            for k in (1, 2):
                info = worker_info(directory, server, k)
                answer = httpx.get(f"{info['url']}/splice/ping", timeout=10).json()
                assert (answer["server"], answer["worker"]) == (server, k)
                members[f"{server}.w{k}"] = info["url"]

        # One deploy answers for all four, each loaded it: the new code answers on every worker at once.
        answer = deploy(urls[1], token, 1)
        assert answer["status"] == "deployed", answer
        assert sorted(s["server"] for s in answer["servers"]) == sorted(members)
        assert all(s["status"] == "deployed" for s in answer["servers"]), answer
        assert [invoke(url, token)["version"] for url in members.values()] == [1, 1, 1, 1]
        assert len({invoke(url, token)["pid"] for url in members.values()}) == 4
        # Through the shared port, both workers of server1 take requests.
        seen: set[int] = set()
        eventually(lambda: seen.add(httpx.get(f"{urls[0]}/splice/ping").json()["worker"]) or seen == {1, 2})

        # The CLI says each worker's outcome.
        (tmp_path / "demo.py").write_text(VERSIONED.format(version=2))
        deployed = splice("deploy", "demo.py", "--cluster", str(directory), "--root", str(tmp_path), cwd=tmp_path)
        for server in servers:
            for k in (1, 2):
                assert re.search(rf"^  {server} worker {k}: deployed \(sequence \d+", deployed.stdout, re.M), (
                    deployed.stdout
                )

        # kill -9 one worker; a deploy made while it is down is what it serves once its supervisor restarted it.
        killed = worker_info(directory, "server1", 2)
        os.kill(killed["pid"], signal.SIGKILL)
        eventually(lambda: not alive(killed["pid"]))
        answer = deploy(urls[1], token, 3)
        assert {s["server"]: s["status"] for s in answer["servers"]}["server2.w1"] == "deployed"

        def restarted() -> dict | None:
            try:
                info = worker_info(directory, "server1", 2)  # removed by the supervisor, written when ready
            except FileNotFoundError:
                return None
            return info if info["pid"] != killed["pid"] else None

        back = eventually(restarted, 60)
        assert isinstance(back, dict)
        assert invoke(back["url"], token)["version"] == 3
        log = (directory / "server1" / "logs" / "server.log").read_text()
        assert f"worker 2 (pid {killed['pid']}) ended unexpectedly (killed by SIGKILL)" in log

        status = splice("status", str(directory))
        for server in servers:
            assert re.search(
                rf"^{server}  {re.escape(urls[servers.index(server)])}  pid \d+  healthy$", status.stdout, re.M
            )
        assert len(re.findall(r"^  worker [12]  http://127\.0\.0\.1:\d+  pid \d+  healthy$", status.stdout, re.M)) == 4
        as_json = json.loads(splice("status", str(directory), "--json").stdout)
        assert [len(s["workers"]) for s in as_json["servers"]] == [2, 2]
        every.append(back["pid"])
    finally:
        splice("stop", str(directory), check=False)
    eventually(lambda: not any(alive(pid) for pid in every))
    assert not list(directory.glob("*/workers/*/worker.json"))


def test_a_changed_worker_count_leaves_no_stale_member_down(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    urls, token = create(directory, servers=1, workers=2)
    splice("start", str(directory))
    try:
        assert sorted(s["server"] for s in deploy(urls[0], token, 1)["servers"]) == ["server1.w1", "server1.w2"]
    finally:
        splice("stop", str(directory))
    config = directory / "cluster.toml"
    config.write_text(config.read_text().replace("workers = 2", "workers = 1"))
    splice("start", str(directory))
    try:
        answer = deploy(urls[0], token, 2)
        assert [(s["server"], s["status"]) for s in answer["servers"]] == [("server1", "deployed")], answer
    finally:
        splice("stop", str(directory))
    config.write_text(config.read_text().replace("workers = 1", "workers = 3"))
    splice("start", str(directory))
    try:
        answer = deploy(urls[0], token, 3)
        names = sorted(s["server"] for s in answer["servers"])
        assert names == ["server1.w1", "server1.w2", "server1.w3"], answer
        assert all(s["status"] == "deployed" for s in answer["servers"]), answer
    finally:
        splice("stop", str(directory))


def test_a_worker_that_cannot_start_stops_its_server(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    urls, _ = create(directory, servers=1, workers=2)
    port = int(urls[0].rsplit(":", 1)[1])
    with socket.socket() as holder:  # another program holds the port, without SO_REUSEPORT: no worker can bind it
        holder.bind(("127.0.0.1", port))
        holder.listen()
        run = subprocess.run(
            [sys.executable, "-m", "splice.server.cli", "server", "run", str(directory), "--server", "server1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 1, run.stdout + run.stderr
    log = (directory / "server1" / "logs" / "server.log").read_text()
    assert re.search(r"worker [12] \(pid \d+\) ended \(exit status 1\) before it took requests; stopping", log), log
    assert "Address already in use" in log
    assert "ended unexpectedly" not in log


def test_workers_on_the_redis_bus_deploy_and_keep_the_cache_in_step(
    tmp_path: Path, redis_server: Callable[[bool], None]
) -> None:
    directory = tmp_path / "cluster"
    _, token = create(directory, servers=1, workers=2, redis=redis_server.url)  # type: ignore[attr-defined]
    splice("start", str(directory))
    try:
        one, two = (worker_info(directory, "server1", k)["url"] for k in (1, 2))
        answer = deploy(one, token, 1)
        assert [(s["server"], s["status"]) for s in answer["servers"]] == [
            ("server1.w1", "deployed"),
            ("server1.w2", "deployed"),
        ], answer
        assert answer["servers"][1].get("via") == "redis"
        assert invoke(two, token)["version"] == 1
        # The cache is per process, kept in step over the bus: each worker is a member.
        cache = "/splice/admin/caches/default/entries/k"
        assert httpx.put(one + cache, json={"value": 41}, headers=headers(token)).status_code == 200
        eventually(lambda: httpx.get(two + cache, headers=headers(token)).json()["value"] == 41)
        assert httpx.put(two + cache, json={"value": 42}, headers=headers(token)).status_code == 200
        eventually(lambda: httpx.get(one + cache, headers=headers(token)).json()["value"] == 42)
    finally:
        splice("stop", str(directory))


RECORD = textwrap.dedent(
    """
    import json, os
    from splice.server import Service

    class Record(Service):
        name = "jobs.record"

        def handle(self):
            with open(self.request.payload["log"], "a") as handle:
                handle.write(json.dumps({"server": self.server, "pid": os.getpid()}) + "\\n")
    """
)


def test_the_scheduler_sends_runs_to_every_worker(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    urls, token = create(directory, servers=1, workers=2)
    log = tmp_path / "runs.jsonl"
    splice("start", str(directory))
    try:
        body = {"modules": [{"path": "jobs.py", "source": RECORD}]}
        answer = httpx.post(f"{urls[0]}/splice/admin/deploy", json=body, headers=headers(token), timeout=60)
        assert answer.status_code == 200, answer.text
        payload = json.dumps({"log": str(log)})
        splice("job", "create", "--name", "spread", "--service", "jobs.record", "--interval", "0.2", "--payload",
               payload, "--cluster", str(directory))  # fmt: skip
        workers = {worker_info(directory, "server1", k)["pid"] for k in (1, 2)}

        def pids() -> set[int]:
            lines = log.read_text().splitlines() if log.exists() else []
            return {json.loads(line)["pid"] for line in lines}

        eventually(lambda: pids() == workers, 30)
        assert {json.loads(line)["server"] for line in log.read_text().splitlines()} == {"server1"}
    finally:
        splice("stop", str(directory))


def test_a_file_saved_in_the_pickup_directory_reaches_every_worker(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    _, token = create(directory, servers=2, workers=2)
    splice("start", str(directory))
    try:
        (directory / "pickup" / "demo.py").write_text(VERSIONED.format(version=7))
        urls = [worker_info(directory, s, k)["url"] for s in ("server1", "server2") for k in (1, 2)]

        def everywhere() -> bool:
            return all(invoke(url, token)["version"] == 7 for url in urls)

        eventually(everywhere, 30)
        # One worker holds the directory's lease, under its own name; every worker says what its last batch did.
        for url in urls:
            (answer,) = httpx.get(f"{url}/splice/admin/pickup", headers=headers(token)).json()["dirs"]
            assert answer["holder"] in ("server1.w1", "server2.w1"), answer
            assert answer["last_batch"] is not None, answer
    finally:
        splice("stop", str(directory))


def test_in_the_foreground_workers_log_to_standard_output_and_stop_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    create(directory, servers=1, workers=2)
    out = tmp_path / "stdout.log"
    with open(out, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "splice.server.cli", "server", "run", str(directory), "--server", "server1"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPLICE_LOG_STDOUT": "1"},
        )
    try:
        eventually(lambda: all(f"server1.w{k} listening on" in out.read_text() for k in (1, 2)), 60)
        eventually(lambda: all((directory / "server1" / "workers" / str(k) / "worker.json").exists() for k in (1, 2)))
        workers = [worker_info(directory, "server1", k)["pid"] for k in (1, 2)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not any(alive(pid) for pid in workers)
    text = out.read_text()
    assert "server server1: worker 2 ended (exit status 0)" in text
    assert "server server1 stopped" in text
    assert not (directory / "server1" / "workers" / "1" / "logs" / "console.log").exists()
