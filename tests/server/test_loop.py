"""``server.loop``: a server process runs on uvloop (the standard loop only when asked, or without uvloop)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys

import pytest
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


def _fresh(code: str) -> str:
    """What a fresh interpreter running ``code`` prints."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="httpx's command line needs rich")
def test_httpx_command_line_is_imported_only_when_run() -> None:
    deferred = "from splice.server.loop import defer_httpx_cli\ndefer_httpx_cli()\n"
    after = "import sys, httpx\nprint(sorted({'rich', 'click', 'pygments'} & set(sys.modules)))"
    assert _fresh(after) != "[]\n"  # httpx alone imports them: what the stand-in saves
    assert _fresh(deferred + after) == "[]\n"
    # and httpx's command line still runs, from the real module
    usage = _fresh(deferred + "import sys, httpx\nsys.argv = ['httpx', '--help']\nhttpx.main()")
    assert "Usage" in usage


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="httpx's command line needs rich")
def test_a_scheduler_imports_httpx_without_its_command_line() -> None:
    assert _fresh("import sys, splice.scheduler\nprint('httpx' in sys.modules, 'rich' in sys.modules)") == (
        "True False\n"
    )
