"""A deploy's answer has a line for every server of the cluster, also one that is alive but does not answer
(stopped with SIGSTOP, or its event loop blocked): through the real CLI and the admin API."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx

from tests.conftest import eventually, make_cluster, running, splice

SOURCE = (
    'from splice.server import Service\n\nV = {}\n\n\nclass A(Service):\n    name = "outcomes.a"\n\n'
    "    def handle(self):\n        pass\n"
)


def test_a_deploy_while_a_server_does_not_answer_says_so_and_every_line_gives_the_sequence_reached(
    tmp_path: Path,
) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2)
    toml = made.directory / "cluster.toml"
    toml.write_text(toml.read_text().replace("cluster_timeout = 10.0", "cluster_timeout = 2.0"))
    project = tmp_path / "project"
    file = project / "shop" / "a.py"
    file.parent.mkdir(parents=True)
    cli = ("--cluster", str(made.directory), "--root", str(project))
    auth = {"Authorization": f"Bearer {made.token}"}
    with running(made) as cluster:
        file.write_text(SOURCE.format(1))
        out = splice("deploy", str(file), *cli).stdout
        sequence = int(re.search(r"\(sequence (\d+)\)", out).group(1))  # type: ignore[union-attr]
        reached = {name: int(seq) for name, seq in re.findall(r"  (server\d): deployed \(sequence (\d+)", out)}
        assert set(reached) == {"server1", "server2"}, out
        assert min(reached.values()) >= sequence, out

        pid = int((cluster.directory / "server2" / "server.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:

            def server2_not_live() -> bool:
                servers = httpx.get(f"{cluster.url}/splice/admin/cluster", headers=auth, timeout=5).json()["servers"]
                return not next(s for s in servers if s["name"] == "server2")["live"]

            eventually(server2_not_live, 30)
            file.write_text(SOURCE.format(2))
            skipped = splice("deploy", str(file), *cli, check=False)
            assert skipped.returncode == 3, skipped.stdout + skipped.stderr
            assert "  server1: deployed (sequence" in skipped.stdout
            assert re.search(
                r"  server2: down \(not seen alive for [\d.]+ s, so not asked; it catches up", skipped.stdout
            )
            assert "did not reach every server" in skipped.stdout

            body = {"modules": [{"path": "shop/a.py", "source": SOURCE.format(3)}]}
            answer = httpx.post(f"{cluster.url}/splice/admin/deploy", json=body, headers=auth, timeout=30).json()
            assert answer["status"] == "partial"
            by_name = {s["server"]: s for s in answer["servers"]}
            assert by_name["server1"]["status"] == "deployed"
            assert by_name["server2"]["status"] == "down"
            assert "catches up from the ODB" in by_name["server2"]["error"]
        finally:
            os.kill(pid, signal.SIGCONT)

        def server2_caught_up() -> bool:
            servers = httpx.get(f"{cluster.url}/splice/admin/cluster", headers=auth, timeout=5).json()["servers"]
            server2 = next(s for s in servers if s["name"] == "server2")
            return bool(server2["live"] and server2["last_sequence"] >= answer["sequence"])

        eventually(server2_caught_up, 30)
        file.write_text(SOURCE.format(4))
        back = splice("deploy", str(file), *cli).stdout
        assert re.search(r"  server2: deployed \(sequence \d+", back), back
