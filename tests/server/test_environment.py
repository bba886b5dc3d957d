"""Servers configured by ``SPLICE_*`` variables alone (a container in Kubernetes): no cluster.toml, no files made
by hand. Two real servers on a fresh PostgreSQL database form a cluster; a deploy through one answers on the other.
Also the refusals of bad variables, each naming its variable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from splice.server.config import load_settings
from splice.server.core.errors import ConfigError
from splice.server.odb import connect
from tests.conftest import POSTGRES_URL, _create_database, eventually, free_ports, splice

SOURCE = (
    "from splice.server import Service\n\n\nclass Where(Service):\n"
    "    name = 'env.where'\n\n    def handle(self):\n        return {'ok': True}\n"
)


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    name = f"splice_env_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_create_database(POSTGRES_URL, name))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_create_database(POSTGRES_URL, name, drop=True))


def _environment(odb: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SPLICE_")}
    return {**keep, "SPLICE_ODB": odb, "SPLICE_CLUSTER_NAME": "k8s-like", **extra}


@contextlib.contextmanager
def _server(home: Path, env: dict[str, str], *command: str) -> Iterator[subprocess.Popen[bytes]]:
    """``splice server run HOME`` (or ``command``) with an empty HOME, as the image's entrypoint runs it; stopped
    with SIGTERM."""
    home.mkdir()
    command = command or (sys.executable, "-m", "splice.server.cli", "server", "run", str(home))
    with (home.parent / f"{home.name}.out").open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_two_servers_from_the_environment_alone_form_a_cluster(tmp_path: Path, fresh_postgres: str) -> None:
    port = free_ports(2)
    token = secrets.token_urlsafe(32)
    key = "dGhpcy1pcy1hLXRlc3QtY2x1c3Rlci1rZXktMzJieXQ="  # 32 bytes, url-safe base64, as Fernet wants
    common = _environment(fresh_postgres, SPLICE_SECRET_KEY=key, SPLICE_ADMIN_TOKEN=token, SPLICE_HOST="127.0.0.1")

    migrate_home = tmp_path / "init"
    migrate_home.mkdir()
    migrated = subprocess.run(
        [sys.executable, "-m", "splice.server.cli", "migrate", str(migrate_home)],
        env=common,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert not any(migrate_home.iterdir())  # the init container leaves nothing behind

    urls = [f"http://127.0.0.1:{port + i}" for i in range(2)]
    envs = [
        {**common, "SPLICE_SERVER_NAME": f"splice-{i}", "SPLICE_PORT": str(port + i), "SPLICE_ADVERTISE": urls[i]}
        for i in range(2)
    ]
    with _server(tmp_path / "s0", envs[0]) as first, _server(tmp_path / "s1", envs[1]) as second:
        admin = {"Authorization": f"Bearer {token}"}

        def both_up() -> bool:
            for process in (first, second):
                if process.poll() is not None:
                    output = "".join(p.read_text() for p in tmp_path.glob("*.out"))
                    raise RuntimeError(f"a server exited {process.returncode}:\n{output}")
            return all(httpx.get(f"{url}/splice/ping", timeout=2).status_code == 200 for url in urls)

        eventually(both_up, 60)

        def registered() -> bool:
            answer = httpx.get(f"{urls[0]}/splice/admin/cluster", headers=admin, timeout=5)
            assert answer.status_code == 200, answer.text
            return {(s["name"], s["url"]) for s in answer.json()["servers"]} >= {
                ("splice-0", urls[0]),
                ("splice-1", urls[1]),
            }

        eventually(registered, 30)
        body = {"modules": [{"path": "env/where.py", "source": SOURCE}]}
        deployed = httpx.post(f"{urls[0]}/splice/admin/deploy", json=body, headers=admin, timeout=30)
        assert deployed.status_code == 200, deployed.text
        assert {s["server"]: s["status"] for s in deployed.json()["servers"]} == {
            "splice-0": "deployed",
            "splice-1": "deployed",
        }

        def answers_on_the_other() -> bool:
            called = httpx.post(
                f"{urls[1]}/splice/admin/invoke", json={"service": "env.where"}, headers=admin, timeout=5
            )
            assert called.status_code == 200, called.text
            return bool(called.json())

        eventually(answers_on_the_other, 20)
        assert (tmp_path / "s1" / "splice-1" / "work" / "deployed" / "env" / "where.py").read_text() == SOURCE
        assert not (tmp_path / "s0" / "cluster.toml").exists()
        assert not (tmp_path / "s0" / "secret-key").exists()  # the key came from the environment

        scheduler_env = {**common, "SPLICE_SCHEDULER_NAME": "sched-0"}
        home = tmp_path / "sched"
        with _server(home, scheduler_env, sys.executable, "-m", "splice.scheduler", str(home), "--name", "sched-0"):
            eventually(lambda: asyncio.run(_lease_holder(fresh_postgres)).startswith("sched-0:"), 30)


async def _lease_holder(url: str) -> str:
    engine = connect(url)
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT holder FROM leases WHERE name = 'scheduler'"))).scalar()
            return str(found or "")
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"SPLICE_SERVER_NAME": "a", "SPLICE_PORT": "http"}, "SPLICE_PORT"),
        ({"SPLICE_SERVER_NAME": "a", "SPLICE_PORT": "70000", "SPLICE_ADVERTISE": "http://x:1"}, "SPLICE_PORT"),
        ({"SPLICE_SERVER_NAME": "a"}, "SPLICE_ADVERTISE"),  # listens on 0.0.0.0: which address do peers use?
        ({"SPLICE_SERVER_NAME": "a", "SPLICE_ADVERTISE": "10.0.0.1:17010"}, "SPLICE_ADVERTISE"),
        ({"SPLICE_LOG_FORMAT": "xml"}, "SPLICE_LOG_FORMAT"),
        ({"SPLICE_SYNC_INTERVAL": "0"}, "SPLICE_SYNC_INTERVAL"),
        ({"SPLICE_ADMIN_TOKEN": "short"}, "SPLICE_ADMIN_TOKEN"),
    ],
)
def test_bad_variables_are_refused_by_name(tmp_path: Path, extra: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path, {"SPLICE_ODB": "postgresql+asyncpg://db/splice", **extra})
    assert variable in str(refused.value)


def test_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "SPLICE_ODB": "postgresql+asyncpg://splice:pw@db/splice",
        "SPLICE_CLUSTER_NAME": "blue",
        "SPLICE_SERVER_NAME": "splice-0",
        "SPLICE_ADVERTISE": "http://10.1.2.3:17010/",
        "SPLICE_REDIS": "redis://redis:6379/2",
        "SPLICE_ADMIN_TOKEN": "t" * 40,
        "SPLICE_LOG_FORMAT": "json",
    }
    settings = load_settings(tmp_path, env)
    assert settings.from_environment
    assert settings.cluster_name == "blue"
    assert settings.redis_url == "redis://redis:6379/2"
    (server,) = settings.servers
    assert (server.name, server.host, server.port, server.url) == (
        "splice-0",
        "0.0.0.0",
        17010,
        "http://10.1.2.3:17010",
    )
    assert settings.admin_token_sha256 is not None
    assert "t" * 40 not in repr(settings)
    assert settings.logs.format == "json"
    scheduler = load_settings(tmp_path, {"SPLICE_ODB": "sqlite:///odb.sqlite", "SPLICE_SCHEDULER_NAME": "sched-0"})
    assert scheduler.scheduler.names == ("sched-0",)
    assert scheduler.servers == ()
    assert scheduler.odb_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'odb.sqlite'}"
    with pytest.raises(ConfigError, match=r"cluster\.toml"):
        load_settings(tmp_path, {})
    assert splice("--version").returncode == 0
