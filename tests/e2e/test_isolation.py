"""A deployed module's import runs in isolation: whatever it does at import time, the server keeps serving.

Against a real cluster subprocess on SQLite whose ``[deploy] import_timeout`` is set short in
``cluster.toml``. The import under way is seen as a grandchild of the server process (server ->
isolation worker -> forked import), which tells the test that a deploy is really in progress.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, make_cluster, splice

IMPORT_TIMEOUT = 2.0
PROBE = """\
from splice.server import Service


class Probe(Service):
    name = "probe"

    async def handle(self):
        self.response.payload = {"alive": True, "got": self.request.payload}
"""
GOOD = """\
from splice.server import Service


class Fine(Service):
    name = "{name}"

    def handle(self):
        self.response.payload = "{name} works"
"""


class Running:
    """The module's cluster: its directory, URLs, project root and server pid."""

    def __init__(self, cluster: Cluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.pid = server_pid(cluster)

    def deploy(self, name: str, source: str) -> Any:
        path = self.root / name
        path.write_text(source, encoding="utf-8")
        return splice(
            "deploy", str(path), "--cluster", str(self.cluster.directory), "--root", str(self.root), check=False
        )

    def invoke(self, name: str, payload: object = None) -> httpx.Response:
        with self.cluster.admin() as admin:
            return admin.post("/splice/admin/invoke", json={"service": name, "payload": payload})

    def assert_unharmed(self) -> None:
        """Same server process, still answering ping, the admin API and the channel."""
        assert server_pid(self.cluster) == self.pid
        ping = httpx.get(f"{self.cluster.url}/splice/ping", timeout=10)
        assert ping.status_code == 200
        assert self.invoke("probe", {"n": 1}).json()["payload"] == {"alive": True, "got": {"n": 1}}
        channel = httpx.post(f"{self.cluster.url}/probe", json={"n": 2}, timeout=10)
        assert channel.json() == {"alive": True, "got": {"n": 2}}


def server_pid(cluster: Cluster) -> int:
    answer = json.loads(splice("status", str(cluster.directory), "--json").stdout)
    [server] = answer["servers"]
    assert server["healthy"]
    return int(server["pid"])


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        if int(text.rpartition(")")[2].split()[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def importing(server: int) -> set[int]:
    """Processes importing a module for a deploy: children of the server's isolation worker that use a CPU (it
    keeps an idle child forked ahead for the next job, which this must not take for the import under way)."""
    return {grandchild for child in children(server) for grandchild in children(child) if _busy(grandchild)}


def _busy(pid: int) -> bool:
    """Whether ``pid`` has used more than 5 clock ticks of CPU in user mode (``utime`` in ``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[11]) > 5  # field 14 of the whole line: the 12th after the command's closing parenthesis


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = tmp_path_factory.mktemp("isolation")
    made = make_cluster(base / "cluster")
    config = made.directory / "cluster.toml"
    text = config.read_text()
    assert re.search(r"(?m)^import_timeout = ", text), text
    config.write_text(re.sub(r"(?m)^import_timeout = .*$", f"import_timeout = {IMPORT_TIMEOUT}", text))
    root = base / "src"
    root.mkdir()
    splice("start", str(made.directory))
    try:
        result = Running(made, root)
        assert result.deploy("probe.py", PROBE).returncode == 0
        channel = ("channel", "create", "--cluster", str(made.directory), "--name", "probe", "--path", "/probe")
        splice(*channel, "--service", "probe", "--method", "POST")
        result.assert_unharmed()
        yield result
    finally:
        splice("stop", str(made.directory), check=False)


def test_endless_import_is_refused_in_bounded_time_while_the_server_answers(running: Running) -> None:
    outcome: dict[str, Any] = {}

    def deploy() -> None:
        outcome["result"] = running.deploy("hang.py", "import time\n\nSTARTED = time.time()\nwhile True:\n    pass\n")
        outcome["finished"] = time.monotonic()

    thread = threading.Thread(target=deploy)
    began = time.monotonic()
    thread.start()
    try:
        [importer] = wait_for(lambda: importing(running.pid), IMPORT_TIMEOUT + 30, "the isolated import")
        # The deploy is under way (its import spins in a child of the isolation worker); the server answers.
        with httpx.Client(base_url=running.cluster.url, timeout=10) as http, running.cluster.admin() as admin:
            for n in range(3):
                assert http.get("/splice/ping").status_code == 200
                assert http.post("/probe", json={"n": n}).json() == {"alive": True, "got": {"n": n}}
                invoked = admin.post("/splice/admin/invoke", json={"service": "probe", "payload": n})
                assert invoked.json()["payload"] == {"alive": True, "got": n}
                assert [m["path"] for m in admin.get("/splice/admin/modules").json()["modules"]] == ["probe.py"]
        answered = time.monotonic()
        still_importing = importer in importing(running.pid)
    finally:
        thread.join(IMPORT_TIMEOUT + 60)
    assert not thread.is_alive()
    assert still_importing, "the answers must have come back while the import was still spinning"
    assert answered < outcome["finished"]

    result = outcome["result"]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(rf"hang\.py: importing did not finish within {IMPORT_TIMEOUT:g} s", result.stderr), result.stderr
    # Bounded: the import timeout plus the isolation worker's margin, and generous slack for a slow machine.
    assert outcome["finished"] - began < IMPORT_TIMEOUT + 10 + 20
    # The spinning import was killed, not left to burn a CPU.
    wait_for(lambda: not Path(f"/proc/{importer}").exists(), 10, "the end of the spinning import")

    running.assert_unharmed()
    assert running.invoke("hang").status_code == 404
    # The isolation worker still works: the next deploy goes through.
    assert running.deploy("after_hang.py", GOOD.format(name="after-hang")).returncode == 0
    assert running.invoke("after-hang").json()["payload"] == "after-hang works"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import os\n\nos._exit(1)\n", r"exit\.py: importing ended the process \(exit status 1\)"),
        ("import os\n\nos._exit(0)\n", r"exit\.py: importing ended the process \(exit status 0\)"),
        ("import sys\n\nsys.exit()\n", r"exit\.py:3: SystemExit"),
        ("import sys\n\nsys.exit('bye')\n", r"exit\.py:3: SystemExit: bye"),
        ("raise SystemExit(3)\n", r"exit\.py:1: SystemExit: 3"),
        ("import os\nimport signal\n\nos.kill(os.getpid(), signal.SIGKILL)\n", r"exit status -9\)"),
        ("import os\nimport signal\n\nos.kill(os.getpid(), signal.SIGSEGV)\n", r"exit status -11\)"),
    ],
    ids=["os._exit(1)", "os._exit(0)", "sys.exit()", "sys.exit(text)", "SystemExit(3)", "SIGKILL", "SIGSEGV"],
)
def test_import_that_ends_the_process_is_refused(running: Running, source: str, message: str) -> None:
    good = running.deploy("exit.py", GOOD.format(name="exit-module"))
    assert good.returncode == 0, good.stderr
    result = running.deploy("exit.py", source)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    running.assert_unharmed()
    # The previous version of the module keeps serving.
    assert running.invoke("exit-module").json()["payload"] == "exit-module works"


def test_import_that_kills_the_isolation_worker_is_refused_naming_the_file(running: Running) -> None:
    result = running.deploy("killer.py", "import os\nimport signal\n\nos.kill(os.getppid(), signal.SIGKILL)\n")
    running.assert_unharmed()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "killer.py" in result.stderr, result.stderr
