"""The deployment path's answer: each server's line gives the sequence that server reached, never less than the
change's, also when a change recorded elsewhere came in between."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import InProcess, make_cluster, running

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


def test_the_answer_says_where_the_time_went_on_this_server_and_on_each_peer(tmp_path: Path) -> None:
    with running(make_cluster(tmp_path / "cluster", servers=2)) as made, made.admin() as admin:
        for value in (1, 2):
            source = SOURCE.replace("V = {}", f"V = {value}")
            answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "a.py", "source": source}]})
            assert answer.status_code == 200, answer.text
        body = answer.json()
        timings = body["timings"]
        assert {"validate_ms", "isolate_ms", "persist_ms", "load_ms", "total_ms"} <= set(timings)
        # The cluster's part: until the last peer's ack came, and the whole path on the server.
        assert 0 < timings["cluster_ms"] < timings["path_ms"]
        assert timings["total_ms"] < timings["path_ms"]
        mine, peer = body["servers"]
        assert (mine["server"], peer["server"]) == ("server1", "server2")
        assert peer["status"] == "deployed"
        # The peer's own part (the load inside its sync; no ODB read: the HTTP notice carried the deployment, and
        # the peer was exactly one step behind it) and the round trip around it.
        assert peer["read_ms"] == 0
        assert peer["load_ms"] > 0
        assert peer["read_ms"] + peer.get("load_ms", 0) <= peer["sync_ms"] <= peer["ms"] <= timings["cluster_ms"]
