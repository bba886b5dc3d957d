"""A real cluster: three server processes, cluster-wide deploys, a server killed and back, Redis stopped.

Servers are real subprocesses started by ``splice start``; the Redis of the bus tests is a
``redis-server`` of the test's own on a free port, so stopping it harms nobody else.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import Cluster, alive, eventually, make_cluster, running, splice

VERSIONED = textwrap.dedent(
    """
    import os
    from splice.server import Service

    class Version(Service):
        name = "demo.version"

        def handle(self):
            self.response.payload = {{"version": {version}, "pid": os.getpid()}}
    """
)


def invoke(url: str, token: str, name: str) -> dict:
    answer = httpx.post(
        f"{url}/splice/admin/invoke", json={"service": name}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()["payload"]


def deploy(url: str, token: str, version: int) -> dict:
    body = {"modules": [{"path": "demo.py", "source": VERSIONED.format(version=version)}]}
    answer = httpx.post(
        f"{url}/splice/admin/deploy", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def versions(cluster: Cluster) -> list[int]:
    return [invoke(url, cluster.token, "demo.version")["version"] for url in cluster.urls]


def test_a_deploy_through_one_server_reaches_all_three(three: Cluster) -> None:
    answer = deploy(three.urls[1], three.token, 1)
    assert answer["status"] == "deployed"
    assert sorted(s["server"] for s in answer["servers"]) == ["server1", "server2", "server3"]
    assert all(s["status"] == "deployed" for s in answer["servers"])
    assert answer["servers"][0]["server"] == "server2"
    # Deployed means loaded: every server answers with the new code at once, no waiting.
    assert versions(three) == [1, 1, 1]
    assert len({invoke(url, three.token, "demo.version")["pid"] for url in three.urls}) == 3

    deploy(three.urls[2], three.token, 2)
    assert versions(three) == [2, 2, 2]
    # A channel created on one server answers on every server.
    splice(
        "channel",
        "create",
        "--cluster",
        str(three.directory),
        "--name",
        "v",
        "--path",
        "/v",
        "--service",
        "demo.version",
    )
    assert [httpx.get(f"{url}/v", timeout=10).json()["version"] for url in three.urls] == [2, 2, 2]
    # And so does an undeploy.
    gone = httpx.post(
        f"{three.urls[0]}/splice/admin/undeploy",
        json={"paths": ["demo.py"]},
        headers={"Authorization": f"Bearer {three.token}"},
        timeout=60,
    )
    assert gone.json()["status"] == "undeployed", gone.text
    assert [httpx.get(f"{url}/v", timeout=10).status_code for url in three.urls] == [404, 404, 404]


def test_a_server_killed_during_deploys_serves_the_latest_version_when_back(three: Cluster) -> None:
    deploy(three.urls[0], three.token, 1)
    pid = int((three.directory / "server3" / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not alive(pid))
    answer = deploy(three.urls[0], three.token, 2)
    answer = deploy(three.urls[1], three.token, 3)
    # server3 is down: the deploy does not wait for it once it stops being seen as alive.
    statuses = {s["server"]: s["status"] for s in answer["servers"]}
    assert statuses["server1"] == statuses["server2"] == "deployed"
    splice("start", str(three.directory))
    assert versions(three) == [3, 3, 3]


def test_concurrent_deploys_of_one_module_end_with_one_winner_everywhere(three: Cluster) -> None:
    deploy(three.urls[0], three.token, 0)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda i: deploy(three.urls[i], three.token, 10 + i), range(3)))

    def settled() -> bool:
        seen = versions(three)
        return len(set(seen)) == 1 and seen[0] in (10, 11, 12)

    eventually(settled)
    modules = httpx.get(
        f"{three.urls[0]}/splice/admin/modules", headers={"Authorization": f"Bearer {three.token}"}
    ).json()["modules"]
    # The ODB's current version is the one every server runs.
    history = httpx.get(
        f"{three.urls[0]}/splice/admin/modules/demo.py/history", headers={"Authorization": f"Bearer {three.token}"}
    ).json()["versions"]
    assert [m["version"] for m in modules] == [history[-1]["version"]]
    assert len(history) == 4


def test_the_redis_bus_carries_deploys_and_catch_up_covers_it_being_down(
    tmp_path: Path, redis_server: Callable[[bool], None]
) -> None:
    made = make_cluster(tmp_path / "cluster", servers=3, redis=redis_server.url)  # type: ignore[attr-defined]
    with running(made):
        answer = deploy(made.urls[0], made.token, 1)
        assert {s.get("via") for s in answer["servers"][1:]} == {"redis"}
        # The notice carried the deployment itself: the peers took it without reading the ODB.
        assert [s.get("read_ms") for s in answer["servers"][1:]] == [0.0, 0.0], answer["servers"]
        assert versions(made) == [1, 1, 1]
        acks = _forge_a_change(redis_server.url, answer["sequence"])  # type: ignore[attr-defined]
        # A notice without the cluster's MAC brings no code: each server read the ODB, which has no such sequence.
        assert sorted(a["server"] for a in acks) == ["server1", "server2", "server3"], acks
        assert all(a["ack"]["status"] == "failed" for a in acks), acks
        assert versions(made) == [1, 1, 1]

        redis_server(False)
        answer = deploy(made.urls[1], made.token, 2)
        assert all(s["status"] == "deployed" for s in answer["servers"]), answer["servers"]
        eventually(lambda: versions(made) == [2, 2, 2])

        redis_server(True)
        for url in made.urls:
            eventually(
                lambda url=url: httpx.get(
                    f"{url}/splice/admin/cluster", headers={"Authorization": f"Bearer {made.token}"}, timeout=5
                ).json()["bus"]["connected"]
            )
        answer = deploy(made.urls[2], made.token, 3)
        assert {s.get("via") for s in answer["servers"][1:]} == {"redis"}
        assert [s.get("read_ms") for s in answer["servers"][1:]] == [0.0, 0.0], answer["servers"]
        assert versions(made) == [3, 3, 3]


def _forge_a_change(url: str, sequence: int) -> list[dict]:
    """Publish, as anyone who can reach Redis could, a notice whose change would deploy version 666 (without the
    MAC only the cluster's key gives); the servers' acknowledgements of it."""
    import hashlib
    import json

    import redis

    source = VERSIONED.format(version=666)
    module = {"path": "demo.py", "module": "demo", "version": 99, "source": source, "deployed_by": "", "origin": None}
    module["sha256"] = hashlib.sha256(source.encode()).hexdigest()
    change = {"after": sequence, "sequence": sequence + 1, "modules": [module]}
    notice = {"kind": "notice", "sequence": sequence + 1, "origin": "intruder", "change": change, "mac": "0" * 64}
    client = redis.Redis.from_url(url)
    acks: list[dict] = []
    try:
        channel = client.pubsub_channels()[0]
        with client.pubsub() as listener:
            listener.subscribe(channel)
            client.publish(channel, json.dumps(notice))
            deadline = time.monotonic() + 20
            while len(acks) < 3 and time.monotonic() < deadline:
                message = listener.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    data = json.loads(message["data"])
                    if data.get("kind") == "ack" and data.get("to") == "intruder":
                        acks.append(data)
    finally:
        client.close()
    return acks


def test_a_service_knows_which_server_runs_it(three: Cluster) -> None:
    source = "from splice.server import Service\n\nclass Who(Service):\n    name = 'who'\n\n    def handle(self):\n"
    source += "        self.response.payload = [self.server, self.service_name]\n"
    answer = httpx.post(
        f"{three.urls[0]}/splice/admin/deploy",
        json={"modules": [{"path": "who.py", "source": source}]},
        headers={"Authorization": f"Bearer {three.token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert [invoke(url, three.token, "who") for url in three.urls] == [
        ["server1", "who"],
        ["server2", "who"],
        ["server3", "who"],
    ]
