"""The pickup component in-process, on every ODB backend: its lease, reconcile at start, batches, the admin view."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from splice.server.cluster import _pickup_rules as rules
from splice.server.cluster.pickup import Pickup
from splice.server.runtime import Runtime
from tests.conftest import InProcess

WAIT = 30.0


def service(name: str, version: int) -> str:
    return textwrap.dedent(
        f"""
        from splice.server import Service


        class Answer(Service):
            name = "{name}"

            def handle(self):
                self.response.payload = {{"version": {version}}}
        """
    )


async def until(check: Callable[[], object], seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        await asyncio.sleep(0.02)


def version(runtime: Runtime, name: str) -> int | None:
    info = runtime.store.get(name)
    return info.version if info is not None else None


@pytest.fixture
async def pickup(server: InProcess) -> AsyncIterator[Pickup]:
    runtime = server.runtime
    assert isinstance(runtime, Runtime)
    made = Pickup(runtime, ttl=3.0, renew=0.1)
    original, runtime.pickup = runtime.pickup, made
    try:
        yield made
    finally:
        await made.stop()
        runtime.pickup = original


async def admin_pickup(server: InProcess) -> dict[str, Any]:
    answer = await server.admin.get("/splice/admin/pickup")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["dirs"][0]
    return found


async def test_reconcile_at_start_then_batches_and_the_admin_view(server: InProcess, pickup: Pickup) -> None:
    runtime = server.runtime
    assert isinstance(runtime, Runtime)
    root = runtime.settings.pickup_dirs[0]
    (root / "before.py").write_text(service("before", 1))
    deployed = await server.admin.post(
        "/splice/admin/deploy", json={"modules": [{"path": "api.py", "source": service("api", 1)}]}
    )
    assert deployed.status_code == 200, deployed.text
    pickup.start()
    await until(lambda: pickup.dirs[0].last_batch is not None)
    assert version(runtime, "before") == 1
    view = await admin_pickup(server)
    assert (view["path"], view["holder"], view["acting"]) == (str(root), "server1", True)
    assert view["last_batch"]["trigger"] == "start"
    assert view["last_batch"]["outcomes"] == [{"path": "before.py", "status": "deployed", "version": 1, "error": None}]

    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "later.py").write_text(service("later", 1))
    await until(lambda: version(runtime, "later") == 1)
    (root / "before.py").unlink()
    await until(lambda: version(runtime, "before") is None)
    # The store drops the module inside the ODB transaction, before its commit: the batch's report comes after.
    await until(lambda: any(o.path == "before.py" for o in pickup.dirs[0].last_batch.outcomes))  # type: ignore[union-attr]
    records = {r.path: r for r in await runtime.repository.current_modules()}
    assert records["pkg/later.py"].origin == rules.tag(str(root))
    assert records["api.py"].origin is None  # deployed by other means: untouched
    assert "before.py" not in records

    await pickup.stop()
    assert await runtime.repository.leases("pickup:") == {}  # handed back at stop


async def test_a_directory_leased_by_another_server_is_left_to_it(server: InProcess, pickup: Pickup) -> None:
    runtime = server.runtime
    assert isinstance(runtime, Runtime)
    root = runtime.settings.pickup_dirs[0]
    lease = rules.tag(str(root))
    assert await runtime.repository.acquire_lease(lease, "server9", 60)
    pickup.start()
    (root / "waits.py").write_text(service("waits", 1))
    await asyncio.sleep(0.5)  # a few renewals, each refused
    assert not pickup.dirs[0].leading
    view = await admin_pickup(server)
    assert (view["holder"], view["acting"], view["last_batch"]) == ("server9", False, None)
    assert version(runtime, "waits") is None
    await runtime.repository.release_lease(lease, "server9")
    # The lease is free: this server takes it and reconciles, which deploys what came meanwhile.
    await until(lambda: version(runtime, "waits") == 1)
    assert (await runtime.repository.leases("pickup:"))[lease]["holder"] == "server1"


async def test_leases_lists_by_prefix_literally(server: InProcess) -> None:
    repository = server.runtime.repository  # type: ignore[attr-defined]
    assert await repository.acquire_lease("pickup:/a_b%", "s1", 30)
    assert await repository.acquire_lease("pickup:/axb", "s2", 30)
    assert await repository.acquire_lease("scheduler", "s3", 30)
    assert set(await repository.leases("pickup:")) == {"pickup:/a_b%", "pickup:/axb"}
    assert set(await repository.leases("pickup:/a_b%")) == {"pickup:/a_b%"}
