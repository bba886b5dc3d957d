"""The deployment path's answer: each server's line gives the sequence that server reached, never less than the
change's, also when a change recorded elsewhere came in between."""

from __future__ import annotations

from tests.conftest import InProcess

SOURCE = (
    'from splice.server import Service\n\nV = {}\n\n\nclass A(Service):\n    name = "path.a"\n\n'
    "    def handle(self):\n        pass\n"
)


async def test_a_server_behind_the_odb_catches_up_before_its_line_gives_the_sequence_it_reached(
    server: InProcess,
) -> None:
    runtime = server.runtime
    first = await server.admin.post(
        "/splice/admin/deploy", json={"modules": [{"path": "a.py", "source": SOURCE.format(1)}]}
    )
    assert first.status_code == 200, first.text
    # Another server records a change; its notice has not reached this one (a restarted peer, a lost event).
    elsewhere = await runtime.repository.record_config_change("channels", "server2")  # type: ignore[attr-defined]
    assert runtime.engine.applied < elsewhere  # type: ignore[attr-defined]
    second = await server.admin.post(
        "/splice/admin/deploy", json={"modules": [{"path": "a.py", "source": SOURCE.format(2)}]}
    )
    answer = second.json()
    assert answer["sequence"] > elsewhere
    (mine,) = answer["servers"]
    assert mine["status"] == "deployed"
    assert mine["sequence"] >= answer["sequence"]  # was the sequence before the other server's change
    assert runtime.engine.applied >= answer["sequence"]  # type: ignore[attr-defined]
