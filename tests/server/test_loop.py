"""``server.loop``: a server process runs on uvloop (the standard loop only when asked, or without uvloop)."""

from __future__ import annotations

import asyncio

import uvloop

from splice.server import loop
from tests.conftest import Cluster, eventually


def _loop_of_run(kind: loop.Kind) -> asyncio.AbstractEventLoop:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    loop.run(main(), kind)
    return seen[0]


def test_a_server_loop_is_uvloop_unless_asked_otherwise() -> None:
    assert isinstance(_loop_of_run("uvloop"), uvloop.Loop)
    assert not isinstance(_loop_of_run("asyncio"), uvloop.Loop)
    assert loop.factory("asyncio")[0] == "asyncio"


def test_a_started_server_says_it_runs_on_uvloop(cluster: Cluster) -> None:
    logs = cluster.directory / "server1" / "logs" / "server.log"
    eventually(lambda: "event loop: uvloop" in logs.read_text())
