"""Faults on real processes: a server killed during a burst of deploys, the cluster's Redis stopped and started.

Every cluster here is real (``splice start``); the Redis is a ``redis-server`` of the test's own on a free port, so
stopping it harms nobody else. What counts is what every server serves at the end: the ODB is the truth, and
every server must reach its last deployment by itself (catch-up), with no restart but of the server killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, alive, eventually, free_port, make_cluster, running, splice

SOURCE = textwrap.dedent(
    """
    from splice.server import Service

    class Version(Service):
        name = "burst.version"

        def handle(self):
            self.response.payload = {{"version": {version}}}
    """
)
BURST = 100


def deploy(url: str, token: str, version: int, timeout: float = 60) -> httpx.Response:
    body = {"modules": [{"path": "burst.py", "source": SOURCE.format(version=version)}]}
    return httpx.post(
        f"{url}/splice/admin/deploy", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def get(url: str, token: str, path: str) -> Any:
    answer = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def served(cluster: Cluster) -> list[tuple[int | None, int | None, int]]:
    """Per server: the version and sequence of burst.py it has loaded, and the version its service answers."""
    out = []
    for url in cluster.urls:
        modules = {m["path"]: m for m in get(url, cluster.token, "/splice/admin/modules")["modules"]}
        module = modules.get("burst.py", {})
        answer = httpx.post(
            f"{url}/splice/admin/invoke",
            json={"service": "burst.version"},
            headers={"Authorization": f"Bearer {cluster.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        out.append((module.get("version"), module.get("sequence"), answer.json()["payload"]["version"]))
    return out


def test_a_server_killed_during_a_burst_of_deploys_ends_on_the_last_version_like_the_others(tmp_path: Path) -> None:
    with running(make_cluster(tmp_path / "cluster", servers=3)) as cluster:
        answers: list[int] = []
        killed = threading.Event()

        def burst() -> None:
            for version in range(1, BURST + 1):
                answers.append(deploy(cluster.urls[0], cluster.token, version).status_code)
                if version == 20:
                    killed.wait(30)

        deployer = threading.Thread(target=burst)
        deployer.start()
        try:
            eventually(lambda: len(answers) >= 20, 60)
            pid = int((cluster.directory / "server3" / "server.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            killed.set()
            eventually(lambda: not alive(pid), 5)
            eventually(lambda: len(answers) >= 50, 60)
            splice("start", str(cluster.directory))  # back while the burst goes on
        finally:
            killed.set()
            deployer.join(120)
        assert answers == [200] * BURST
        last = get(cluster.urls[0], cluster.token, "/splice/admin/cluster")["sequence"]
        eventually(lambda: served(cluster) == [(BURST, last, BURST)] * 3, 30)

        def reported() -> dict[str, tuple[int, bool]]:
            servers = get(cluster.urls[2], cluster.token, "/splice/admin/cluster")["servers"]
            return {s["name"]: (s["last_sequence"], s["live"]) for s in servers}

        eventually(lambda: reported() == {f"server{i}": (last, True) for i in (1, 2, 3)}, 10)


# -- the PostgreSQL ODB restarted under load ----------------------------------------------------------------------

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivatePostgres:
    """A PostgreSQL instance of the test's own (never the shared one on 5432), stopped and started at will."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="splice-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self.bin = PG_BIN[-1]
        subprocess.run(["chown", "postgres", str(self.directory)], check=True)
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        log = str(self.directory / "postgres.log")
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # .ci/run runs as root beside Debian's PostgreSQL: a machine where this cannot run must say so, not skip
    assert PG_BIN, "needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)"
    assert os.geteuid() == 0, "needs root, to run PostgreSQL's binaries as the postgres user"
    assert shutil.which("runuser") is not None, "needs runuser (util-linux), to run them as postgres"
    postgres = PrivatePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()


def test_the_postgresql_odb_restarted_under_load(tmp_path: Path, private_postgres: PrivatePostgres) -> None:
    made = make_cluster(tmp_path / "cluster", odb=private_postgres.url, servers=2)
    with running(made) as cluster:
        assert deploy(cluster.urls[0], cluster.token, 1).status_code == 200
        splice("channel", "create", "--cluster", str(cluster.directory), "--name", "v", "--path", "/v",
               "--service", "burst.version")  # fmt: skip
        calls: list[tuple[int, str]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    for url in cluster.urls:
                        answer = client.get(f"{url}/v")
                        calls.append((answer.status_code, answer.text[:300]))

        caller = threading.Thread(target=load)
        caller.start()
        try:
            eventually(lambda: len(calls) > 20, 10)
            private_postgres.stop()
            before = len(calls)
            refused = deploy(cluster.urls[1], cluster.token, 2, timeout=30)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "odb_unavailable", error
            assert "ODB" in error["message"], error
            assert refused.headers["x-splice-cid"] == refused.json()["cid"]
            eventually(lambda: len(calls) > before + 20, 10)  # served meanwhile, from what they have
            private_postgres.start()
            answer = eventually(lambda: (a := deploy(cluster.urls[1], cluster.token, 3)).status_code == 200 and a, 30)
            assert isinstance(answer, httpx.Response)
            assert {s["status"] for s in answer.json()["servers"]} == {"deployed"}, answer.text
            eventually(lambda: [r[2] for r in served(cluster)] == [3, 3], 10)
            middle = len(calls)
            eventually(lambda: len(calls) > middle + 20, 10)
        finally:
            stop.set()
            caller.join(30)
        failed = [call for call in calls if call[0] != 200]
        assert failed == [], f"{len(failed)} of {len(calls)} calls failed: {failed[:5]}"


# -- the cluster's own Redis stopped and started -----------------------------------------------------------------


def test_the_clusters_redis_stopped_and_started_again(tmp_path: Path, redis_server: Callable[[bool], None]) -> None:
    made = make_cluster(tmp_path / "cluster", servers=3, redis=redis_server.url)  # type: ignore[attr-defined]
    with running(made) as cluster:
        pids = [get(url, cluster.token, "/splice/admin/server")["pid"] for url in cluster.urls]
        first = deploy(cluster.urls[0], cluster.token, 1)
        assert [s.get("via") for s in first.json()["servers"][1:]] == ["redis", "redis"], first.text

        redis_server(False)
        down = deploy(cluster.urls[1], cluster.token, 2)
        assert down.status_code == 200, down.text
        peers = down.json()["servers"][1:]
        # Redis is away: the notice went another way, and the answer says which; every server has the version.
        assert [(s["status"], s.get("via")) for s in peers] == [("deployed", "http")] * 2, peers
        assert [version for _, _, version in served(cluster)] == [2, 2, 2]

        redis_server(True)
        eventually(
            lambda: all(get(url, cluster.token, "/splice/admin/cluster")["bus"]["connected"] for url in cluster.urls),
            20,
        )
        back = deploy(cluster.urls[2], cluster.token, 3)
        assert [(s["status"], s.get("via")) for s in back.json()["servers"][1:]] == [("deployed", "redis")] * 2
        assert [version for _, _, version in served(cluster)] == [3, 3, 3]
        assert [get(url, cluster.token, "/splice/admin/server")["pid"] for url in cluster.urls] == pids
