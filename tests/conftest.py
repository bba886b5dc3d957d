"""Shared fixtures: real ODBs (SQLite in tmp_path, the local PostgreSQL and MariaDB), real servers.

``odb_url`` is parametrized over every backend: a test that takes it runs three times. PostgreSQL and
MariaDB use the ``test`` database; the fixture drops every table before and after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, text

from splice.server.odb import connect

pytest_plugins = ["pytester"]

POSTGRES_URL = os.environ.get("SPLICE_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SPLICE_TEST_MARIADB", "mysql+aiomysql://root@127.0.0.1:3306/test")


async def drop_everything(url: str) -> None:
    engine = connect(url)
    try:
        async with engine.begin() as conn:

            def drop(sync_conn: object) -> None:
                meta = MetaData()
                meta.reflect(bind=sync_conn)  # type: ignore[arg-type]
                meta.drop_all(bind=sync_conn)  # type: ignore[arg-type]

            await conn.run_sync(drop)
    finally:
        await engine.dispose()


async def _create_database(url: str, name: str, drop: bool = False) -> None:
    engine = connect(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if drop:
                force = " WITH (FORCE)" if url.startswith("postgresql") else ""
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
            else:
                await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """A database of this run's own in PostgreSQL and MariaDB (made in the ``test`` database's server), so that
    concurrent test runs on one machine never drop each other's tables."""
    name = f"splice_test_{os.getpid()}_{secrets.token_hex(3)}"
    urls = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}
    for url in urls.values():
        asyncio.run(_create_database(url, name))
    try:
        yield {kind: url.rsplit("/", 1)[0] + "/" + name for kind, url in urls.items()}
    finally:
        for url in urls.values():
            asyncio.run(_create_database(url, name, drop=True))


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def odb_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}"
        return
    url = request.getfixturevalue("server_databases")[request.param]
    asyncio.run(drop_everything(url))
    yield url
    asyncio.run(drop_everything(url))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def splice(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``splice`` command."""
    result = subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"splice {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Cluster:
    directory: Path
    url: str
    token: str
    urls: list[str] = field(default_factory=list)
    load_balancer: str | None = None

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def splice(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return splice(*args, cwd=cwd, check=check)


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free now, below the ephemeral range: the thousands of client
    connections of a load test take ports from that range, and one may hold a port picked there by the time
    a server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(max(low - 20000, 1024), low - count)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def make_cluster(
    directory: Path,
    odb: str | None = None,
    servers: int = 1,
    redis: str | None = None,
    load_balancer: bool = False,
    dashboard: bool = False,
    workers: int = 1,
) -> Cluster:
    """``splice quickstart create`` on free ports; ``url`` is server1's, ``urls`` every server's. No dashboard
    unless asked for: starting one with every cluster would slow every test down."""
    port = free_ports(servers + 1)
    args = ["quickstart", "create", str(directory), "--port", str(port), "--servers", str(servers)]
    args.append("--load-balancer" if load_balancer else "--no-load-balancer")
    args.append("--dashboard" if dashboard else "--no-dashboard")
    if odb:
        args += ["--odb", odb]
    if redis:
        args += ["--redis", redis]
    if workers != 1:
        args += ["--workers", str(workers)]
    splice(*args)
    token = (directory / "admin-token").read_text().strip()
    urls = [f"http://127.0.0.1:{port + i}" for i in range(1, servers + 1)]
    balancer = f"http://127.0.0.1:{port}" if load_balancer else None
    return Cluster(directory, urls[0], token, urls, balancer)


@contextlib.contextmanager
def running(made: Cluster) -> Iterator[Cluster]:
    """``splice start`` the cluster, and ``splice stop`` it however the block ends."""
    splice("start", str(made.directory))
    try:
        yield made
    finally:
        splice("stop", str(made.directory), check=False)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A started one-server cluster on SQLite, stopped at the end."""
    with running(make_cluster(tmp_path / "cluster")) as made:
        yield made


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    """A started three-server cluster on SQLite (no load balancer), stopped at the end."""
    with running(make_cluster(tmp_path / "cluster", servers=3)) as made:
        yield made


@dataclass
class InProcess:
    """A server's runtime and ASGI app in this process, with an admin client."""

    runtime: object
    client: httpx.AsyncClient
    admin: httpx.AsyncClient


@contextlib.asynccontextmanager
async def in_process(directory: Path) -> AsyncIterator[InProcess]:
    """The server ``server1`` of the cluster made in ``directory``: its runtime and ASGI app in this process."""
    from splice.server.bootstrap import build_runtime
    from splice.server.config import load_settings
    from splice.server.http.app import build_app

    runtime = await build_runtime(load_settings(directory), "server1")
    app = build_app(runtime)
    token = (directory / "admin-token").read_text().strip()
    transport = httpx.ASGITransport(app=app)
    base = runtime.server.url
    async with (
        httpx.AsyncClient(transport=transport, base_url=base) as client,
        httpx.AsyncClient(transport=transport, base_url=base, headers={"Authorization": f"Bearer {token}"}) as admin,
    ):
        try:
            yield InProcess(runtime, client, admin)
        finally:
            await runtime.close()


@contextlib.asynccontextmanager
async def quickstart_in_process(tmp_path: Path, odb_url: str | None) -> AsyncIterator[InProcess]:
    """A one-server quickstart cluster in ``tmp_path/cluster`` on ``odb_url`` (``None``: SQLite in the directory),
    its server in-process."""
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), odb_url, None, 1, None, False)
    async with in_process(directory) as made:
        yield made


@pytest.fixture
async def server(tmp_path: Path, odb_url: str) -> AsyncIterator[InProcess]:
    """A real server (runtime + ASGI app) in-process on every ODB backend."""
    async with quickstart_in_process(tmp_path, odb_url) as made:
        yield made


@pytest.fixture
async def sqlite_server(tmp_path: Path) -> AsyncIterator[InProcess]:
    """A real server in-process on SQLite only: for what the ODB backend does not change (the HTTP edge)."""
    async with quickstart_in_process(tmp_path, None) as made:
        yield made


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not reaped yet by init) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def eventually(check: Callable[[], object], seconds: float = 20.0) -> object:
    """Poll ``check`` until it returns something true (or stops raising); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {check}")
        time.sleep(0.1)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[bool], None]]:
    """A redis-server of this test's own; call the yielded function with False to stop it, True to start it."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    process: list[subprocess.Popen[bytes]] = []

    def switch(on: bool) -> None:
        if on:
            process.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL,
                    cwd=tmp_path,
                )
            )
            eventually(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout)
        else:
            process[-1].kill()
            process[-1].wait()

    switch(True)
    switch.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    try:
        yield switch
    finally:
        for p in process:
            p.kill()
            p.wait()
