"""A file channel on a real two-server cluster: both servers watch one directory, each file is handled once.

The servers are real subprocesses (``splice start``); the service appends ``<file name> <server>`` to a log
file (one ``O_APPEND`` write per call), so the log tells which server handled which file, and how often.
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections import Counter
from pathlib import Path

from tests.conftest import Cluster, alive, eventually, make_cluster, running

FILES = 200
WAIT = 120.0
SERVICE = textwrap.dedent(
    """
    import os, time
    from splice.server import Service

    class Take(Service):
        name = "inbox.take"

        def handle(self):
            assert self.request.payload == ("file " + self.request.path).encode()
            time.sleep({pause})
            fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{{self.request.path}} {{self.server}}\\n".encode())
            finally:
                os.close(fd)
    """
)


def set_up(cluster: Cluster, log: Path, pause: float, areas: tuple[str, ...] = ("server1", "server2")) -> Path:
    """Deploy the service and a file channel on ``inbox/`` of the cluster directory; answers that directory."""
    with cluster.admin() as admin:
        source = SERVICE.format(log=str(log), pause=pause)
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "inbox_take.py", "source": source}]})
        assert answer.status_code == 200, answer.text
        body = {"name": "inbox", "kind": "file", "service": "inbox.take", "directory": "inbox", "settle": 0.2}
        answer = admin.post("/splice/admin/channels", json=body)
        assert answer.status_code == 201, answer.text
    inbox = cluster.directory / "inbox"
    for server in areas:  # each watches it: each made its work area
        eventually(lambda server=server: (inbox / ".splice" / server).is_dir(), WAIT)
    return inbox


def drop(inbox: Path) -> set[str]:
    names = {f"order-{i:03}.txt" for i in range(FILES)}
    for name in sorted(names):
        (inbox / name).write_bytes(f"file {name}".encode())
    return names


def calls(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [(line.split()[0], line.split()[1]) for line in log.read_text().splitlines()]


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()}


def test_two_servers_watching_one_directory_handle_each_file_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with running(make_cluster(tmp_path / "cluster", servers=2)) as cluster:
        inbox = set_up(cluster, log, pause=0.01)
        names = drop(inbox)

        eventually(lambda: files(inbox / "done") == names, WAIT)
        made = calls(log)
        assert Counter(name for name, _ in made) == Counter(names)  # each file once, across the cluster
        by_server = Counter(server for _, server in made)
        assert set(by_server) == {"server1", "server2"}, by_server  # both took files
        assert files(inbox) == set()
        assert files(inbox / "failed") == set()
        assert not files(inbox / ".splice" / "server1")
        assert not files(inbox / ".splice" / "server2")
        print(f"files handled by server: {dict(by_server)}")


def test_files_a_killed_server_was_handling_end_in_done_all_the_same(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with running(make_cluster(tmp_path / "cluster", servers=2)) as cluster:
        inbox = set_up(cluster, log, pause=0.1)
        names = drop(inbox)

        eventually(lambda: sum(server == "server2" for _, server in calls(log)) >= 20, WAIT)
        pid = int((cluster.directory / "server2" / "server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: not alive(pid), WAIT)
        left = files(inbox / ".splice" / "server2")
        assert left, "server2 was handling no file when killed: the take-over was not tried"

        eventually(lambda: names <= files(inbox / "done"), WAIT)  # server1 took over what server2 left
        made = Counter(name for name, _ in calls(log))
        assert set(made) == names  # at least once
        twice = sorted(name for name, count in made.items() if count > 1)
        assert set(twice) <= left  # only a file server2 held when it died can have been handled twice
        # Killed between its link into done/ and its unlink, a file is in done/ twice (the second timestamped).
        extra = files(inbox / "done") - names
        assert len(extra) <= len(twice), extra
        assert not files(inbox / ".splice" / "server2")
        assert files(inbox / "failed") == set()
        print(f"server2 held {len(left)} files when killed; handled twice: {twice}; in done/ twice: {sorted(extra)}")


def test_every_worker_of_two_servers_watches_and_each_file_is_handled_once(tmp_path: Path) -> None:
    """Servers of two workers: each worker is a watcher of its own (its work area named after its member)."""
    log = tmp_path / "calls.log"
    with running(make_cluster(tmp_path / "cluster", servers=2, workers=2)) as cluster:
        areas = ("server1.w1", "server1.w2", "server2.w1", "server2.w2")
        inbox = set_up(cluster, log, pause=0.01, areas=areas)
        names = drop(inbox)

        eventually(lambda: files(inbox / "done") == names, WAIT)
        made = calls(log)
        assert Counter(name for name, _ in made) == Counter(names)  # each file once, across 4 processes
        assert {server for _, server in made} == {"server1", "server2"}  # services see their server's name
