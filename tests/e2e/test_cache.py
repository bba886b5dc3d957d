"""Caches on a real cluster (``splice start``, three server processes): a value set on one server is read on the
others, a delete reaches all, a server killed (kill -9) or paused never serves what was deleted meanwhile, over
the HTTP bus and over Redis; a Redis-backed cache shared by the servers; eviction at the limit; ``splice cache``.

The Redis of these tests is a ``redis-server`` of the test's own on a free port (``redis_server``).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, alive, eventually, make_cluster, running, splice

SERVICES = textwrap.dedent(
    """
    from splice.server import Service


    class Put(Service):
        name = "cache.put"

        def handle(self):
            p = self.request.payload
            self.cache[p.get("cache", "default")].set(p["key"], p["value"], expiry=p.get("expiry"))


    class Read(Service):
        name = "cache.read"

        async def handle(self):
            p = self.request.payload
            cache = self.cache[p.get("cache", "default")]
            self.response.payload = {"value": await cache.aget(p["key"]), "there": await cache.aexists(p["key"])}
    """
)


def admin(cluster: Cluster, url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {cluster.token}"}, timeout=30)


def entry(cluster: Cluster, url: str, key: str, cache: str = "default") -> Any:
    """The value server ``url`` holds for ``key``, or ``None`` (404)."""
    with admin(cluster, url) as client:
        answer = client.get(f"/splice/admin/caches/{cache}/entries/{key}")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()["value"]


def put(cluster: Cluster, url: str, key: str, value: Any, cache: str = "default") -> None:
    with admin(cluster, url) as client:
        answer = client.put(f"/splice/admin/caches/{cache}/entries/{key}", json={"value": value})
    assert answer.status_code == 200, answer.text


def delete(cluster: Cluster, url: str, key: str, cache: str = "default") -> None:
    with admin(cluster, url) as client:
        assert client.delete(f"/splice/admin/caches/{cache}/entries/{key}").status_code == 200


def invoke(cluster: Cluster, url: str, service: str, payload: Any) -> Any:
    with admin(cluster, url) as client:
        answer = client.post("/splice/admin/invoke", json={"service": service, "payload": payload})
    assert answer.status_code == 200, answer.text
    return answer.json()["payload"]


def everywhere(cluster: Cluster, key: str, expected: Any, cache: str = "default") -> None:
    """Poll until every server holds ``expected`` for ``key`` (``None``: none holds it)."""
    for url in cluster.urls:
        eventually(lambda url=url: entry(cluster, url, key, cache) == expected or None)


def deploy_services(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "project" / "cachesvc.py"
    source.parent.mkdir(exist_ok=True)
    source.write_text(SERVICES)
    splice("deploy", str(source), "--cluster", str(cluster.directory), "--root", str(source.parent))


def kill(cluster: Cluster, server: str) -> None:
    pid = int((cluster.directory / server / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not alive(pid))


@pytest.fixture(params=["http", "redis"])
def bus_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A started three-server cluster whose bus is HTTP, or a redis-server of the test's own."""
    redis = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    with running(make_cluster(tmp_path / "cluster", servers=3, redis=redis)) as made:
        yield made


def test_a_value_set_on_one_server_is_read_on_the_others_and_a_delete_reaches_all(
    bus_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = bus_cluster
    one, two, three = cluster.urls
    put(cluster, one, "greeting", {"hello": "world"})
    everywhere(cluster, "greeting", {"hello": "world"})
    delete(cluster, two, "greeting")
    everywhere(cluster, "greeting", None)
    deploy_services(cluster, tmp_path)
    invoke(cluster, two, "cache.put", {"key": "from-a-service", "value": [1, 2, 3]})
    eventually(lambda: invoke(cluster, three, "cache.read", {"key": "from-a-service"})["value"] == [1, 2, 3])
    with admin(cluster, one) as client:
        assert client.post("/splice/admin/caches/default/clear").status_code == 200
    everywhere(cluster, "from-a-service", None)


def test_a_server_killed_and_restarted_never_serves_a_value_deleted_while_it_was_down(bus_cluster: Cluster) -> None:
    cluster = bus_cluster
    one, _, three = cluster.urls
    for n in range(20):
        put(cluster, one, f"k{n}", n)
    eventually(lambda: entry(cluster, three, "k19") == 19)
    kill(cluster, "server3")
    for n in range(10):
        delete(cluster, one, f"k{n}")
    splice("start", str(cluster.directory))
    for n in range(10):
        assert entry(cluster, three, f"k{n}") is None
    in_step(cluster, one, three)
    for n in range(10):
        assert entry(cluster, three, f"k{n}") is None


def in_step(cluster: Cluster, source: str, target: str) -> None:
    """Poll until a value set on ``source`` reaches ``target`` (a server back in the cluster is sent to again once
    the others know it is back: its hello, or their next heartbeat)."""
    values = iter(range(1_000_000))

    def reached() -> bool:
        n = next(values)
        put(cluster, source, "in-step", n)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if entry(cluster, target, "in-step") == n:
                return True
            time.sleep(0.05)
        return False

    eventually(reached)


def test_a_paused_server_drops_what_it_may_have_missed(bus_cluster: Cluster) -> None:
    """server3 stops (SIGSTOP) long enough to be taken as down, misses deletes, and comes back (SIGCONT): it drops
    its memory caches at its first heartbeat, so what was deleted meanwhile is gone from it too."""
    cluster = bus_cluster
    one, _, three = cluster.urls
    put(cluster, one, "doomed", "old")
    put(cluster, one, "kept", "yes")
    eventually(lambda: entry(cluster, three, "kept") == "yes")
    pid = int((cluster.directory / "server3" / "server.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        with admin(cluster, one) as client:
            eventually(lambda: not _live(client, "server3"))
        delete(cluster, one, "doomed")
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: entry(cluster, three, "doomed") is None)
    eventually(lambda: entry(cluster, three, "kept") is None)  # everything dropped, not only what changed
    in_step(cluster, one, three)


def _live(client: httpx.Client, server: str) -> bool:
    servers = client.get("/splice/admin/cluster").json()["servers"]
    return bool(next(s for s in servers if s["name"] == server)["live"])


def test_a_redis_backed_cache_is_one_copy_for_every_server(
    tmp_path: Path, redis_server: Callable[[bool], None]
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    with running(make_cluster(tmp_path / "cluster", servers=2)) as cluster:
        one, two = cluster.urls
        splice(
            "outgoing",
            "create",
            "--cluster",
            str(cluster.directory),
            "--name",
            "r",
            "--kind",
            "redis",
            "--address",
            url,
        )
        with admin(cluster, one) as client:
            made = client.post("/splice/admin/caches", json={"name": "shared", "backend": "redis", "connection": "r"})
        assert made.status_code == 201, made.text
        put(cluster, one, "k", {"v": 1}, cache="shared")
        assert entry(cluster, two, "k", cache="shared") == {"v": 1}  # no propagation: one copy
        deploy_services(cluster, tmp_path)
        invoke(cluster, two, "cache.put", {"cache": "shared", "key": "svc", "value": "from two", "expiry": 30})
        assert invoke(cluster, one, "cache.read", {"cache": "shared", "key": "svc"}) == {
            "value": "from two",
            "there": True,
        }
        delete(cluster, two, "k", cache="shared")
        assert entry(cluster, one, "k", cache="shared") is None


def test_eviction_at_the_limit(three: Cluster) -> None:
    one, two, three_url = three.urls
    with admin(three, one) as client:
        made = client.post("/splice/admin/caches", json={"name": "small", "max_entries": 5})
        assert made.status_code == 201, made.text
        for n in range(8):
            put(three, one, f"k{n}", n, cache="small")
        assert client.get("/splice/admin/caches/small/keys").json()["keys"] == ["k3", "k4", "k5", "k6", "k7"]
        small = {c["name"]: c for c in client.get("/splice/admin/caches").json()["caches"]}["small"]
        assert small["entries"] == 5
        assert small["evictions"] == 3
    for url in (two, three_url):  # the others apply the sets in order and evict the same way
        with admin(three, url) as client:
            eventually(
                lambda client=client: (
                    client.get("/splice/admin/caches/small/keys").json()["keys"] == [f"k{n}" for n in range(3, 8)]
                )
            )


def test_splice_cache_commands(three: Cluster) -> None:
    where = ["--cluster", str(three.directory)]
    # In a cluster's first second a server may send its cache events before it knows a peer that registered after
    # it; that peer then drops what it kept (a miss, never a stale value): wait until server1 reaches both others.
    for url in three.urls[1:]:
        in_step(three, three.urls[0], url)
    splice("cache", "delete", "in-step", *where)
    everywhere(three, "in-step", None)
    assert "set answer in cache default" in splice("cache", "set", "answer", "42", *where).stdout
    splice("cache", "set", "word", "hello", *where)
    splice("cache", "set", "doc", '{"a": [1, true]}', "--expiry", "60", *where)
    splice("cache", "set", "quoted", "42", "--text", *where)
    assert json.loads(splice("cache", "get", "answer", *where).stdout) == 42
    assert json.loads(splice("cache", "get", "word", *where).stdout) == "hello"
    assert json.loads(splice("cache", "get", "doc", *where).stdout) == {"a": [1, True]}
    assert json.loads(splice("cache", "get", "quoted", *where).stdout) == "42"
    everywhere(three, "doc", {"a": [1, True]})
    assert splice("cache", "keys", *where).stdout.split() == ["answer", "doc", "quoted", "word"]
    assert splice("cache", "keys", "qu", *where).stdout.split() == ["quoted"]
    listing = splice("cache", "list", *where).stdout.splitlines()
    assert listing[0].split() == ["NAME", "BACKEND", "ENTRIES", "BYTES", "HITS", "MISSES", "EVICTIONS"]
    assert listing[1].split()[:3] == ["default", "memory", "4"]
    assert "deleted word from cache default on every server" in splice("cache", "delete", "word", *where).stdout
    everywhere(three, "word", None)
    missing = splice("cache", "get", "word", *where, check=False)
    assert missing.returncode == 1
    assert "holds no key 'word'" in missing.stderr
    unknown = splice("cache", "get", "x", "--cache", "defualt", *where, check=False)
    assert unknown.returncode == 1
    assert "did you mean 'default'" in unknown.stderr
    assert "cleared cache default on every server" in splice("cache", "clear", *where).stdout
    everywhere(three, "doc", None)
