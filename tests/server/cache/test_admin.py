"""The admin API of caches on one in-process server: definitions (each a configuration change), entries, refusals."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import InProcess, free_port, in_process

CACHES = "/splice/admin/caches"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcess]:
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    async with in_process(directory) as made:
        yield made


async def test_every_cluster_has_the_default_cache(server: InProcess) -> None:
    answer = await server.admin.get(CACHES)
    assert answer.status_code == 200
    (default,) = answer.json()["caches"]
    assert default == {
        "name": "default",
        "backend": "memory",
        "max_entries": 100000,
        "max_bytes": 64 * 1024 * 1024,
        "expiry": None,
        "max_value": 1024 * 1024,
        "connection": None,
        "declared": False,
        "entries": 0,
        "bytes": 0,
        "hits": 0,
        "misses": 0,
        "evictions": 0,
    }


async def test_entries_set_read_listed_deleted_and_cleared(server: InProcess) -> None:
    admin = server.admin
    put = await admin.put(f"{CACHES}/default/entries/user:1/profile", json={"value": {"name": "Ada"}, "expiry": 60})
    assert put.json() == {"cache": "default", "key": "user:1/profile", "set": True}
    raw = base64.b64encode(b"\x00\x01").decode()
    await admin.put(f"{CACHES}/default/entries/blob", json={"value": raw, "encoding": "base64"})
    await admin.put(f"{CACHES}/default/entries/user:2", json={"value": 2})
    got = (await admin.get(f"{CACHES}/default/entries/user:1/profile")).json()
    assert got["value"] == {"name": "Ada"}
    assert got["encoding"] == "json"
    assert 0 < got["expires_in"] <= 60
    blob = (await admin.get(f"{CACHES}/default/entries/blob")).json()
    assert blob == {"cache": "default", "key": "blob", "value": raw, "encoding": "base64", "expires_in": None}
    keys = (await admin.get(f"{CACHES}/default/keys", params={"prefix": "user:"})).json()
    assert keys == {"cache": "default", "keys": ["user:1/profile", "user:2"], "truncated": False}
    limited = (await admin.get(f"{CACHES}/default/keys", params={"limit": 1})).json()
    assert limited == {"cache": "default", "keys": ["blob"], "truncated": True}
    deleted = await admin.delete(f"{CACHES}/default/entries/user:2")
    assert deleted.json() == {"cache": "default", "key": "user:2", "existed": True}
    again = await admin.delete(f"{CACHES}/default/entries/user:2")
    assert again.json()["existed"] is False
    missing = await admin.get(f"{CACHES}/default/entries/user:2")
    assert missing.status_code == 404
    assert "holds no key 'user:2' on server server1" in missing.json()["error"]["message"]
    assert (await admin.post(f"{CACHES}/default/clear")).json() == {"cache": "default", "cleared": 2}
    (info,) = (await admin.get(CACHES)).json()["caches"]
    assert info["entries"] == 0
    assert info["hits"] == 0  # what the admin reads is not counted as a service's hit or miss


async def test_define_change_and_delete_a_cache(server: InProcess) -> None:
    admin = server.admin
    created = await admin.post(CACHES, json={"name": "rates", "max_entries": 10, "expiry": 300})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True
    assert body["cache"]["max_entries"] == 10
    assert [s["status"] for s in body["servers"]] == ["deployed"]
    again = await admin.post(CACHES, json={"name": "rates"})
    assert again.status_code == 409
    for n in range(10):
        await admin.put(f"{CACHES}/rates/entries/k{n}", json={"value": n})
    changed = await admin.put(f"{CACHES}/rates", json={"name": "rates", "max_entries": 4})
    assert changed.status_code == 200
    assert changed.json()["created"] is False
    keys = (await admin.get(f"{CACHES}/rates/keys")).json()["keys"]
    assert keys == ["k6", "k7", "k8", "k9"]  # the most recently used that fit stay
    listed = {c["name"]: c for c in (await admin.get(CACHES)).json()["caches"]}
    assert listed["rates"]["declared"] is True
    assert listed["rates"]["evictions"] == 6
    gone = await admin.delete(f"{CACHES}/rates")
    assert gone.json()["deleted"] == "rates"
    assert (await admin.get(f"{CACHES}/rates/keys")).status_code == 404


async def test_refusals_say_what_is_wrong(server: InProcess) -> None:
    admin = server.admin
    default = await admin.delete(f"{CACHES}/default")
    assert default.status_code == 409
    assert "the cache 'default' cannot be deleted: every cluster has it" in default.json()["error"]["message"]
    unknown = await admin.get(f"{CACHES}/defualt/keys")
    assert unknown.status_code == 404
    assert "did you mean 'default'" in unknown.json()["error"]["message"]
    no_redis = await admin.post(CACHES, json={"name": "shared", "backend": "redis", "connection": "sessions"})
    assert no_redis.status_code == 404
    assert "needs a redis outgoing connection: there is no connection named 'sessions'" in no_redis.text
    mixed = await admin.post(CACHES, json={"name": "m", "backend": "memory", "connection": "sessions"})
    assert mixed.status_code == 422
    assert "only a redis cache takes 'connection'" in mixed.text
    other = await admin.put(f"{CACHES}/a", json={"name": "b"})
    assert other.status_code == 422
    assert "the body names cache 'b', the path 'a'" in other.text
    bad = await admin.post(CACHES, json={"name": "x", "max_entries": 0})
    assert bad.status_code == 400
    assert bad.json()["error"]["problems"][0]["field"] == "max_entries"
    small = await admin.post(CACHES, json={"name": "tiny", "max_value": 10})
    assert small.status_code == 201
    big = await admin.put(f"{CACHES}/tiny/entries/k", json={"value": "x" * 20})
    assert big.status_code == 413
    assert "more than max_value 10" in big.text
    bad64 = await admin.put(f"{CACHES}/default/entries/k", json={"value": "%%", "encoding": "base64"})
    assert bad64.status_code == 400


async def test_a_redis_cache_through_an_outgoing_connection(server: InProcess) -> None:
    import secrets

    admin = server.admin
    name = f"t{secrets.token_hex(4)}"
    made = await admin.post(
        "/splice/admin/outgoing", json={"name": "r", "kind": "redis", "address": "redis://127.0.0.1:6379/0"}
    )
    assert made.status_code == 201, made.text
    created = await admin.post(CACHES, json={"name": name, "backend": "redis", "connection": "r"})
    assert created.status_code == 201, created.text
    try:
        await admin.put(f"{CACHES}/{name}/entries/k", json={"value": [1, 2], "expiry": 30})
        got = (await admin.get(f"{CACHES}/{name}/entries/k")).json()
        assert got["value"] == [1, 2]
        assert 0 < got["expires_in"] <= 30
        info = {c["name"]: c for c in (await admin.get(CACHES)).json()["caches"]}[name]
        assert info["entries"] == 1
        assert info["bytes"] is None
    finally:
        assert (await admin.post(f"{CACHES}/{name}/clear")).json()["cleared"] == 1
