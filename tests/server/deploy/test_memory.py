"""Old module versions are given back: redeployed or undeployed, a module's objects are collected.

In-process (the real engine through the real admin API, weak references to module-level objects) for what holds
an old version (typing's caches, the parent package, reference cycles), and a real server process (its RSS from
``/proc``) for the memory itself, with a module loaded at start (frozen by ``gc.freeze()``) among the versions.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, InProcess, eventually, make_cluster, running, splice

HELD = textwrap.dedent(
    """
    from typing import List, Optional
    from pydantic import BaseModel
    from splice.server import Service

    class Big:
        def me(self):
            return BIG

    class Item(BaseModel):
        a: int = 0

        def me(self):
            return BIG

    BIG = Big()
    ALIASES = (Optional[Big], List[Item])  # typing caches these aliases, and with them the classes
    VERSION = {version}

    class Hold(Service):
        name = "memory.hold"

        class Input:
            items: Optional[List[int]] = None

        def handle(self):
            self.response.payload = {{"version": VERSION}}
    """
)
SIBLING = "from splice.server import Service\n\n\nclass Other(Service):\n    def handle(self):\n        pass\n"


async def _gone(refs: list[weakref.ref[object]], seconds: float = 20.0) -> list[int]:
    """Indices of the objects still alive once all are gone or ``seconds`` passed (the reclaimer runs on this loop)."""
    deadline = time.monotonic() + seconds
    while (alive := [i for i, ref in enumerate(refs) if ref() is not None]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return alive


@pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
async def test_redeployed_and_undeployed_versions_are_collected(server: InProcess) -> None:
    refs: list[weakref.ref[object]] = []
    for version in range(3):
        modules = [{"path": "memory/hold.py", "source": HELD.format(version=version)}]
        if version == 0:
            modules.append({"path": "memory/other.py", "source": SIBLING})
        answer = await server.admin.post("/splice/admin/deploy", json={"modules": modules})
        assert answer.status_code == 200, answer.text
        answer = await server.admin.post("/splice/admin/invoke", json={"service": "memory.hold", "payload": {}})
        assert answer.json()["payload"] == {"version": version}, answer.text
        refs.append(weakref.ref(sys.modules["memory.hold"].BIG))
    assert await _gone(refs[:2]) == [], "replaced versions are still held"
    # Undeployed while its package stays (memory/other.py): the package's attribute must not keep it.
    answer = await server.admin.post("/splice/admin/undeploy", json={"paths": ["memory/hold.py"]})
    assert answer.status_code == 200, answer.text
    assert await _gone(refs) == [], "the undeployed version is still held"
    assert not hasattr(sys.modules["memory"], "hold")
    engine = server.runtime.engine  # type: ignore[attr-defined]
    assert engine.reclaimer.pending == []


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _pid(cluster: Cluster) -> int:
    return int((cluster.directory / "server1" / "server.pid").read_text().split()[0])


BIG_MB = 48
ALLOCATES = textwrap.dedent(
    f"""
    from splice.server import Service

    DATA = b"\\x01" * ({BIG_MB} * 1024 * 1024)  # written to, so every page counts in RSS
    VERSION = {{version}}

    class Big(Service):
        name = "memory.big"

        def handle(self):
            self.response.payload = {{{{"version": VERSION, "size": len(DATA)}}}}
    """
)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path_factory.mktemp("memory") / "cluster")) as made:
        yield made


def test_server_rss_comes_back_after_redeploys_and_undeploy(real: Cluster) -> None:
    with real.admin() as admin:

        def deploy(version: int) -> None:
            source = ALLOCATES.format(version=version)
            answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "memory/big.py", "source": source}]})
            assert answer.status_code == 200, answer.text
            answer = admin.post("/splice/admin/invoke", json={"service": "memory.big", "payload": {}})
            assert answer.json()["payload"]["version"] == version, answer.text

        deploy(0)
        # Restarted, the server loads the module at start and freezes it with everything start-up made.
        splice("stop", str(real.directory))
        splice("start", str(real.directory))
        pid = _pid(real)
        loaded = _rss_mb(pid)
        for version in range(1, 4):
            deploy(version)
        # Each replaced version is given back (without it: loaded + 3 x BIG_MB, for good).
        eventually(lambda: _rss_mb(pid) < loaded + BIG_MB / 2, seconds=15)
        answer = admin.post("/splice/admin/undeploy", json={"paths": ["memory/big.py"]})
        assert answer.status_code == 200, answer.text
        eventually(lambda: _rss_mb(pid) < loaded - BIG_MB / 2, seconds=15)
