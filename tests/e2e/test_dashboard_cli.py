"""The dashboard's process as ``splice start``, ``status`` and ``stop`` run it: with the quickstart cluster that
made it, and on its own (a dashboard directory pointed at a running cluster's server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from tests.conftest import Cluster, alive, eventually, free_port, make_cluster, running, splice


def dashboard_url(directory: Path) -> str:
    table = tomllib.loads((directory / "dashboard.toml").read_text())["dashboard"]
    return f"http://{table['host']}:{table['port']}"


def healthz(url: str) -> int:
    return httpx.get(f"{url}/healthz", timeout=5).status_code


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_quickstart_dashboard_starts_reports_and_stops_with_the_cluster(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", dashboard=True)
    url = dashboard_url(made.directory / "dashboard")
    with running(made):
        # 'splice start' returned only once /healthz answered: no retry here.
        assert healthz(url) == 200
        status = splice("status", str(made.directory), "--json")
        dashboard = json.loads(status.stdout)["dashboard"]
        assert dashboard["url"] == url
        assert dashboard["healthy"] is True
        pid = dashboard["pid"]
        assert alive(pid)
        assert (made.directory / "dashboard" / "dashboard.pid").read_text().strip() == str(pid)
        text = splice("status", str(made.directory)).stdout
        assert f"dashboard  {url}  pid {pid}  healthy" in text.splitlines()
        again = splice("start", str(made.directory))
        assert f"dashboard already running: {url} (pid {pid})" in again.stdout
        assert (made.directory / "dashboard" / "logs" / "dashboard.log").exists()

        stopped = splice("stop", str(made.directory))
        assert stopped.stdout.splitlines()[0] == "dashboard stopped"  # first: nobody acts on a stopping cluster
        eventually(lambda: not alive(pid))
        assert refused(url)
        assert not (made.directory / "dashboard" / "dashboard.pid").exists()
        down = splice("status", str(made.directory), "--json", check=False)
        assert json.loads(down.stdout)["dashboard"] == {"url": url, "pid": None, "healthy": False}

        started = splice("start", str(made.directory))
        line = re.search(rf"^dashboard started: {re.escape(url)} \(pid (\d+)\)$", started.stdout, re.M)
        assert line, started.stdout
        assert healthz(url) == 200
    assert refused(url)  # running() stopped the cluster, and its dashboard with it


def test_a_dashboard_of_its_own_against_a_running_cluster(tmp_path: Path, cluster: Cluster) -> None:
    directory = tmp_path / "dash"
    port = free_port()
    splice(
        "create", "dashboard", str(directory), "--admin-url", cluster.url, "--token-file",
        str(cluster.directory / "admin-token"), "--cluster-name", "cluster", "--port", str(port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        started = splice("start", str(directory))
        assert re.search(rf"^dashboard started: {re.escape(url)} \(pid \d+\)$", started.stdout, re.M), started.stdout
        assert healthz(url) == 200
        status = json.loads(splice("status", str(directory), "--json").stdout)
        assert status["servers"] == []
        assert status["dashboard"]["healthy"] is True
        # It reaches the cluster through the admin API with the copied token: its cluster screen lists server1.
        env = {**os.environ, "SPLICE_DASHBOARD_PASSWORD": "ops-password"}
        command = ["dashboard", "user", "create", "ops", "--cluster", str(directory)]
        subprocess.run(
            [sys.executable, "-m", "splice.server.cli", *command], env=env, check=True, capture_output=True, timeout=60
        )
        with httpx.Client(base_url=url, timeout=30) as client:
            form = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf, form
            login = {"username": "ops", "password": "ops-password", "csrf": csrf.group(1), "next": "/"}
            assert client.post("/login", data=login).status_code == 303
            page = client.get("/")
            assert page.status_code == 200
            assert 'data-server="server1"' in page.text
    finally:
        stopped = splice("stop", str(directory))
    assert stopped.stdout.strip() == "dashboard stopped"
    assert refused(url)
    assert httpx.get(f"{cluster.url}/splice/ping", timeout=5).status_code == 200
