"""Distributed creation: one command per step, several server directories sharing PostgreSQL or MariaDB
as the ODB and Redis as the bus, as provisioning tools would run them on several hosts."""

from __future__ import annotations

import asyncio
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import drop_everything, eventually, free_ports, splice

SERVICE = textwrap.dedent(
    """
    from splice.server import Service

    class Where(Service):
        name = "where.version"

        def handle(self):
            self.response.payload = {version}
    """
)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_servers_in_their_own_directories_form_one_cluster(
    tmp_path: Path, backend: str, server_databases: dict[str, str], redis_server: Callable[[bool], None]
) -> None:
    odb = server_databases[backend]
    asyncio.run(drop_everything(odb))
    redis = redis_server.url  # type: ignore[attr-defined]
    splice("create", "odb", odb)
    splice("create", "odb", odb)  # idempotent
    token_file = tmp_path / "admin-token"
    created = splice("create", "cluster", "shop", "--odb", odb, "--token-file", str(token_file))
    assert "admin token written" in created.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "@" not in created.stdout or "***" in created.stdout or "root@" in created.stdout

    port = free_ports(2)
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for i, directory in enumerate(hosts):
        splice(
            "create", "server", str(directory), "--odb", odb, "--cluster", "shop", "--redis", redis,
            "--name", f"web{i + 1}", "--port", str(port + i),
        )  # fmt: skip
    refused = splice(
        "create", "server", str(tmp_path / "host-c"), "--odb", odb, "--cluster", "shop", "--name", "web1",
        "--port", str(port + 5),
    check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "already has a server named 'web1'" in refused.stderr
    missing = splice(
        "create", "server", str(tmp_path / "host-d"), "--odb", odb, "--cluster", "nope", "--port", str(port + 6),
    check=False)  # fmt: skip
    assert "no cluster named 'nope'" in missing.stderr

    # Every server of a cluster needs the same cluster key (outgoing secrets, the internal token): copied by hand
    key = Fernet.generate_key()
    for directory in hosts:
        (directory / "secret-key").write_bytes(key)
        (directory / "secret-key").chmod(0o600)
    for directory in hosts:
        splice("start", str(directory))
    try:
        source = tmp_path / "project" / "where.py"
        source.parent.mkdir()
        source.write_text(SERVICE.format(version=1))
        deployed = splice("deploy", str(source), "--cluster", str(hosts[0]), "--root", str(source.parent))
        assert "where.version" in deployed.stdout
        urls = [f"http://127.0.0.1:{port + i}" for i in range(2)]
        token = token_file.read_text().strip()  # the cluster's admin token works on every server

        def answers() -> list[object]:
            return [
                httpx.post(
                    f"{url}/splice/admin/invoke",
                    json={"service": "where.version"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                ).json()["payload"]
                for url in urls
            ]

        assert answers() == [1, 1]
        source.write_text(SERVICE.format(version=2))
        splice("deploy", str(source), "--cluster", str(hosts[1]), "--root", str(source.parent))
        assert answers() == [2, 2]
        info = httpx.get(f"{urls[0]}/splice/admin/cluster", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["bus"] == {"kind": "redis", "connected": True}
        assert sorted(s["name"] for s in info["servers"] if s["live"]) == ["web1", "web2"]
        eventually(lambda: answers() == [2, 2])
    finally:
        for directory in hosts:
            splice("stop", str(directory), check=False)
