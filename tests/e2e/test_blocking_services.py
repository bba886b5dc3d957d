"""Services that block cannot take a server down: a bounded worker pool and queue (503 beyond), a timeout per call
(504), ping 503 ``saturated`` so HAProxy drains the server, readiness, a shutdown that ends whatever threads do, and
``splice start`` naming a stuck old process.

One cluster of two servers behind a real HAProxy, with ``[calls] threads = 2, queue = 1, timeout = 1``. Plain
``def`` services block on an event that ``block.release`` sets, so each test frees the threads it took.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster, alive, eventually, make_cluster, splice

SERVICES = textwrap.dedent(
    '''
    import asyncio
    import threading
    from pathlib import Path

    from splice.server import Service

    GATE = [threading.Event()]
    CANCELLED = [0]


    class Stuck(Service):
        """Blocks its worker thread until block.release (a blocking driver call that never returns)."""

        name = "block.stuck"

        def handle(self):
            GATE[0].wait()
            self.response.payload = {"released": True}


    class Release(Service):
        name = "block.release"

        async def handle(self):
            GATE[0].set()
            GATE[0] = threading.Event()


    class Fast(Service):
        name = "block.fast"

        def handle(self):
            self.response.payload = {"server": Path(__file__).parents[2].name}


    class Async(Service):
        name = "block.async"

        async def handle(self):
            self.response.payload = {"server": Path(__file__).parents[2].name}


    class SlowAsync(Service):
        name = "block.slow-async"

        async def handle(self):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                CANCELLED[0] += 1
                raise


    class OwnTimeout(Service):
        name = "block.own-timeout"
        timeout = 0.2

        async def handle(self):
            await asyncio.sleep(30)


    class Cancelled(Service):
        name = "block.cancelled"

        async def handle(self):
            self.response.payload = {"cancelled": CANCELLED[0]}
    '''
)
CALLS = "\n[calls]\nthreads = 2\nqueue = 1\ntimeout = 1.0\n"
CHANNELS = {
    "stuck": "block.stuck",
    "release": "block.release",
    "fast": "block.fast",
    "async": "block.async",
    "slow-async": "block.slow-async",
    "own-timeout": "block.own-timeout",
    "cancelled": "block.cancelled",
}


@pytest.fixture(scope="module")
def blocking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = make_cluster(tmp_path_factory.mktemp("blocking") / "cluster", servers=2, load_balancer=True)
    with (made.directory / "cluster.toml").open("a") as toml:
        toml.write(CALLS)
    try:
        splice("start", str(made.directory))
        with made.admin() as admin:
            deployed = admin.post("/splice/admin/deploy", json={"modules": [{"path": "block.py", "source": SERVICES}]})
            assert deployed.status_code == 200, deployed.text
            for name, service in CHANNELS.items():
                channel = {"name": f"block-{name}", "path": f"/{name}", "service": service}
                created = admin.post("/splice/admin/channels", json=channel)
                assert created.status_code == 201, created.text
        for url in made.urls:
            eventually(lambda url=url: httpx.get(f"{url}/cancelled", timeout=5).status_code == 200)
        yield made
    finally:
        splice("stop", str(made.directory), check=False)
        for pid in _pids(made.directory):  # only if stop failed: never leave a stuck server behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _pids(directory: Path) -> list[int]:
    found = []
    for pid_file in directory.glob("server*/server.pid"):
        try:
            found.append(int(pid_file.read_text()))
        except (OSError, ValueError):
            continue
    return found


def _ping(url: str) -> httpx.Response:
    return httpx.get(f"{url}/splice/ping", timeout=5)


def _threads(url: str) -> dict[str, int]:
    return dict(_ping(url).json().get("threads") or {})


def _release(url: str) -> None:
    """Free every thread of ``url`` held by block.stuck, and wait until the pool says so."""
    for _ in range(3):  # a call that took its thread after a release waits on the next gate
        assert httpx.get(f"{url}/release", timeout=5).status_code in (200, 204)
    eventually(lambda: _threads(url).get("busy") == 0 and _ping(url).status_code == 200, 10)


def _stuck_calls(url: str, count: int, pool: ThreadPoolExecutor) -> list[Future[httpx.Response]]:
    return [pool.submit(httpx.get, f"{url}/stuck", timeout=15) for _ in range(count)]


def test_a_call_beyond_threads_and_queue_is_refused_at_once_and_ping_says_saturated(blocking: Cluster) -> None:
    url = blocking.urls[0]
    with ThreadPoolExecutor(4) as pool:
        try:
            waiting = _stuck_calls(url, 3, pool)  # threads (2) + queue (1)
            eventually(lambda: _threads(url).get("busy") == 2 and _threads(url).get("queued") == 1, 10)

            began = time.monotonic()
            refused = httpx.get(f"{url}/stuck", timeout=15)
            quick = time.monotonic() - began
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "overloaded"
            assert "all 2 worker threads are busy" in error["message"]
            assert "1 of 1" in error["message"]
            assert error["threads"] == {"busy": 2, "size": 2, "queued": 1, "queue": 1}
            assert error["retry_after"] == 1
            assert refused.json()["cid"] == refused.headers["x-splice-cid"]
            assert quick < 1.0  # not queued: refused before the 1 s timeout could answer

            ping = _ping(url)
            assert ping.status_code == 503
            assert ping.json()["status"] == "saturated"
            assert ping.json()["threads"]["busy"] == 2
            # Async services still answer on the event loop.
            assert httpx.get(f"{url}/async", timeout=5).json() == {"server": "server1"}

            # The three calls get 504 at their timeout (the queued one never got a thread).
            answers = [f.result() for f in waiting]
            assert [a.status_code for a in answers] == [504] * 3
            for answer in answers:
                body = answer.json()
                assert body["error"]["code"] == "timeout"
                assert body["error"]["message"].startswith("service 'block.stuck' did not answer within 1 s")
                assert "[calls] timeout" in body["error"]["message"]
                assert body["cid"] == answer.headers["x-splice-cid"]
            # The two threads are still held (abandoned, counted busy): ping keeps the balancer away.
            assert _threads(url)["busy"] == 2
            assert _ping(url).status_code == 503
        finally:
            _release(url)
    log = (blocking.directory / "server1" / "logs" / "server.log").read_text()
    assert "returned after" in log
    assert "its result is dropped" in log


def test_async_services_are_cancelled_at_their_timeout_and_a_class_may_set_its_own(blocking: Cluster) -> None:
    url = blocking.urls[1]
    before = httpx.get(f"{url}/cancelled", timeout=5).json()["cancelled"]
    late = httpx.get(f"{url}/slow-async", timeout=15)
    assert late.status_code == 504
    assert late.json()["error"]["message"].startswith("service 'block.slow-async' did not answer within 1 s")
    assert httpx.get(f"{url}/cancelled", timeout=5).json()["cancelled"] == before + 1

    own = httpx.get(f"{url}/own-timeout", timeout=15)
    assert own.status_code == 504
    message = own.json()["error"]["message"]
    assert message == "service 'block.own-timeout' did not answer within 0.2 s (its timeout: OwnTimeout.timeout)"


def test_haproxy_drains_a_saturated_server_and_no_call_hangs(blocking: Cluster) -> None:
    url, lb = blocking.urls[0], blocking.load_balancer
    with ThreadPoolExecutor(4) as pool:
        try:
            for answer in [f.result() for f in _stuck_calls(url, 2, pool)]:
                assert answer.status_code == 504  # both threads of server1 are now held by stuck code
            assert _ping(url).json()["status"] == "saturated"

            def through_balancer() -> httpx.Response:
                began = time.monotonic()
                answer = httpx.get(f"{lb}/fast", timeout=10)
                assert time.monotonic() - began < 5, "a call through the balancer hung"
                assert answer.status_code in (200, 503, 504), answer.text
                return answer

            # Until HAProxy's checks mark server1 down, a call sent there is answered (504/503), never left hanging;
            # then every call goes to server2.
            def only_server2() -> bool:
                answers = [through_balancer() for _ in range(6)]
                return all(a.status_code == 200 and a.json()["server"] == "server2" for a in answers)

            eventually(only_server2, 20)
            answers = [through_balancer() for _ in range(20)]
            assert {(a.status_code, a.json()["server"]) for a in answers} == {(200, "server2")}
        finally:
            _release(url)
    eventually(
        lambda: {httpx.get(f"{lb}/fast", timeout=5).json()["server"] for _ in range(6)} == {"server1", "server2"}
    )


def test_ready_says_whether_the_odb_answers_and_the_server_caught_up(blocking: Cluster) -> None:
    ready = httpx.get(f"{blocking.urls[0]}/splice/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok"
    assert body["applied"] == body["latest"]
    assert body["applied"] > 0


def test_sigterm_ends_a_server_with_stuck_threads_within_its_grace(blocking: Cluster) -> None:
    url = blocking.urls[0]
    pid = int((blocking.directory / "server1" / "server.pid").read_text())
    with ThreadPoolExecutor(2) as pool:
        for answer in [f.result() for f in _stuck_calls(url, 2, pool)]:
            assert answer.status_code == 504
    cids = {call for call in _log(blocking, "server1").split() if call.startswith("cid")}
    assert _threads(url)["busy"] == 2
    os.kill(pid, signal.SIGTERM)
    eventually(lambda: not alive(pid), 10)  # the grace is 5 s; before, the process never ended
    log = _log(blocking, "server1")
    assert "server stopped with service calls still running in worker threads" in log
    assert log.count("block.stuck (cid ") >= 2, cids


def test_start_names_a_stuck_old_process_and_what_to_do(blocking: Cluster) -> None:
    pid = int((blocking.directory / "server2" / "server.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # alive, its pid file in place, answering nothing
    try:
        began = time.monotonic()
        result = splice("start", str(blocking.directory), check=False)
        assert time.monotonic() - began < 15  # it used to wait the whole 30 s --timeout
        assert result.returncode != 0
        error = result.stderr + result.stdout
        assert f"server2 does not answer {blocking.urls[1]}/splice/ping, but its process still runs: pid {pid}" in error
        assert f"splice.server.cli server run {blocking.directory} --server server2" in error
        assert f"kill {pid}" in error
        assert f"splice stop {blocking.directory}" in error
        assert f"kill -CONT {pid}" in error
    finally:
        os.kill(pid, signal.SIGCONT)


def test_start_names_the_process_holding_a_servers_port(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster")
    port = int(made.url.rpartition(":")[2])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(60)",
        ]
    )
    try:
        eventually(lambda: _connects(port), 10)
        result = splice("start", str(made.directory), check=False)
        assert result.returncode != 0
        error = result.stderr + result.stdout
        assert (
            f"server1 cannot listen on 127.0.0.1:{port}: the port is held by pid {holder.pid} ({sys.executable} -c"
            in error
        )
        assert f"kill {holder.pid}" in error
    finally:
        holder.kill()
        holder.wait()
        splice("stop", str(made.directory), check=False)


def _connects(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _log(cluster: Cluster, server: str) -> str:
    return (cluster.directory / server / "logs" / "server.log").read_text(errors="replace")
