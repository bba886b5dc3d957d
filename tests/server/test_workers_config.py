"""Configuring workers: ``SPLICE_WORKERS``, ``--workers`` written into ``cluster.toml``, deploy lines per worker,
stale members retired from a real ODB, and a worker's private address."""

from __future__ import annotations

import argparse
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from splice.server.bootstrap import private_socket
from splice.server.cli.cluster import with_workers, workers_arg
from splice.server.cli.commands import server_lines
from splice.server.config import ServerSettings, load_settings, render_config
from splice.server.core.errors import ConfigError
from splice.server.odb import OdbRepository, connect, migrate
from splice.server.supervisor import describe_exit

ENV = {"SPLICE_ODB": "postgresql+asyncpg://db/splice", "SPLICE_SERVER_NAME": "splice-0", "SPLICE_HOST": "127.0.0.1"}


@pytest.mark.parametrize(("value", "workers"), [("", 1), ("3", 3), ("auto", len(os.sched_getaffinity(0)))])
def test_splice_workers_sets_the_worker_count(tmp_path: Path, value: str, workers: int) -> None:
    (server,) = load_settings(tmp_path, {**ENV, "SPLICE_WORKERS": value}).servers
    assert (server.workers, server.worker, server.member) == (workers, 1, "splice-0" if workers == 1 else "splice-0.w1")


@pytest.mark.parametrize("value", ["0", "65", "two", "1.5"])
def test_a_bad_splice_workers_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path, {**ENV, "SPLICE_WORKERS": value})
    assert "SPLICE_WORKERS" in str(refused.value)
    assert repr(value) in str(refused.value)


def test_a_server_name_like_a_workers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SPLICE_SERVER_NAME"):
        load_settings(tmp_path, {**ENV, "SPLICE_SERVER_NAME": "s.w2"})


@pytest.mark.parametrize(("workers", "expected"), [(1, 1), (4, 4), ("auto", len(os.sched_getaffinity(0)))])
def test_workers_written_into_a_new_cluster_toml(tmp_path: Path, workers: int | str, expected: int) -> None:
    text = render_config("c", "sqlite:///odb.sqlite", [("server1", "127.0.0.1", 9001), ("server2", "127.0.0.1", 9002)])
    (tmp_path / "cluster.toml").write_text(with_workers(text, workers))
    assert [s.workers for s in load_settings(tmp_path).servers] == [expected, expected]


def test_the_workers_option() -> None:
    assert (workers_arg("2"), workers_arg("auto")) == (2, "auto")
    for bad in ("0", "65", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="from 1 to 64 or auto"):
            workers_arg(bad)


def test_deploy_lines_name_each_worker() -> None:
    answer = {
        "servers": [
            {"server": "server1.w1", "status": "deployed", "sequence": 7},
            {"server": "server1.w2", "status": "failed", "error": "boom"},
            {"server": "server2", "status": "down", "error": "not seen alive for 9.0 s"},
        ]
    }
    assert server_lines(answer) == [
        "  server1 worker 1: deployed (sequence 7)",
        "  server1 worker 2: failed (boom)",
        "  server2: down (not seen alive for 9.0 s)",
    ]


def test_how_a_worker_ended() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exit status 3"


async def test_stale_members_of_a_server_are_retired(tmp_path: Path) -> None:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}")
    try:
        await migrate(engine)
        repository = OdbRepository(engine, "c")
        await repository.ensure_cluster()
        for name in ("server1", "server1.w1", "server1.w2", "server1.w3", "server1.web", "server10.w1", "server2"):
            await repository.register_server(name, "http://127.0.0.1:1", 1, 0)
        retired = await repository.retire_members("server1", ["server1.w1", "server1.w2"])
        assert sorted(retired) == ["server1", "server1.w3"]
        left = [s["name"] for s in await repository.servers()]
        assert left == ["server1.w1", "server1.w2", "server1.web", "server10.w1", "server2"]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("host", "advertise", "shown"),
    [("127.0.0.1", None, "127.0.0.1"), ("0.0.0.0", None, "127.0.0.1"), ("0.0.0.0", "http://10.9.8.7:80", "10.9.8.7")],
)
def test_a_workers_private_address(host: str, advertise: str | None, shown: str) -> None:
    server = replace(ServerSettings("s", host, 9000, 0, advertise, workers=2), worker=2)
    sock, url = private_socket(server)
    with sock:
        port = sock.getsockname()[1]
        assert port != 0
        assert url == f"http://{shown}:{port}"


def test_create_server_with_workers_adds_them_to_an_existing_cluster(tmp_path: Path) -> None:
    from tests.conftest import splice

    directory = tmp_path / "cluster"
    splice("quickstart", "create", str(directory), "--servers", "1", "--no-load-balancer", "--no-dashboard")
    splice("create", "server", str(directory), "--workers", "3")
    splice("create", "server", str(directory), "--name", "one")
    servers = load_settings(directory, {}).servers
    assert [(s.name, s.workers) for s in servers] == [("server1", 1), ("server2", 3), ("one", 1)]
    assert "workers" not in (directory / "cluster.toml").read_text().split('name = "one"')[1]


def test_each_worker_labels_its_own_metrics() -> None:
    from splice.server.core.metrics import Metrics
    from splice.server.http.admin_metrics import prometheus_text

    metrics = Metrics()
    metrics.record("orders.get", 0.002, at=1796240000.0, cid="c1", ok=True, channel=None)
    assert 'splice_service_calls_total{server="server1",worker="2",service="orders.get"} 1' in prometheus_text(
        metrics, "server1", 2
    )
    assert 'splice_service_calls_total{server="server1",service="orders.get"} 1' in prometheus_text(metrics, "server1")
