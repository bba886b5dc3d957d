"""The pickup directory on a real cluster: saves, ``git pull``, broken files, a stopped cluster, a killed holder.

Servers are real subprocesses (``splice start``) sharing the cluster's ``pickup/`` directory; files are
written and git is run for real. Every "eventually" polls with a generous deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Cluster, eventually, make_cluster, running, splice

WAIT = 60.0


def service(name: str, version: int, body: str = "", imports: str = "") -> str:
    """A module with one service ``name`` answering ``{"name": ..., "version": ...}`` (plus ``body``'s extra)."""
    return textwrap.dedent(
        f"""
        from splice.server import Service
        {imports}


        class Answer(Service):
            name = "{name}"

            def handle(self):
                self.response.payload = {{"name": "{name}", "version": {version}{body}}}
        """
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def invoke(url: str, token: str, name: str) -> dict[str, Any] | None:
    """The service's answer on one server, ``None`` when it is not deployed there."""
    answer = httpx.post(
        f"{url}/splice/admin/invoke", json={"service": name}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    payload: dict[str, Any] = answer.json()["payload"]
    return payload


def everywhere(cluster: Cluster, name: str, urls: list[str] | None = None) -> list[dict[str, Any] | None]:
    return [invoke(url, cluster.token, name) for url in urls or cluster.urls]


def answers_everywhere(
    cluster: Cluster, name: str, expected: dict[str, Any] | None, urls: list[str] | None = None
) -> None:
    def check() -> bool:
        return all(found == expected for found in everywhere(cluster, name, urls))

    eventually(check, WAIT)


def admin_get(cluster: Cluster, path: str, url: str | None = None) -> Any:
    answer = httpx.get(
        f"{url or cluster.url}/splice/admin/{path}", headers={"Authorization": f"Bearer {cluster.token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def holder(cluster: Cluster, url: str | None = None) -> str:
    """The server acting on the pickup directory, once there is one."""
    found = eventually(lambda: admin_get(cluster, "pickup", url)["dirs"][0]["holder"], WAIT)
    return str(found)


def history(cluster: Cluster, path: str, url: str | None = None) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = admin_get(cluster, f"modules/{path}/history", url)["versions"]
    return versions


def log(cluster: Cluster, server: str) -> str:
    return (cluster.directory / server / "logs" / "server.log").read_text(encoding="utf-8")


def servers_that_acted(cluster: Cluster) -> set[str]:
    names = [f"server{i}" for i in range(1, len(cluster.urls) + 1)]
    return {name for name in names if "pickup: deployed" in log(cluster, name)}


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_saved_file_answers_on_every_server_and_a_deleted_one_nowhere(three: Cluster) -> None:
    pickup = three.directory / "pickup"
    write(pickup / "greet.py", service("greet", 1))
    answers_everywhere(three, "greet", {"name": "greet", "version": 1})
    write(pickup / "greet.py", service("greet", 2))
    answers_everywhere(three, "greet", {"name": "greet", "version": 2})
    # Editor noise and hidden files are never deployed.
    write(pickup / ".greet.py.swp", "binary junk")
    write(pickup / "greet.py~", service("backup", 1))
    write(pickup / ".hidden" / "secret.py", service("secret", 1))
    write(pickup / "__pycache__" / "cached.py", service("cached", 1))
    write(pickup / "notes.txt", "not code")
    (pickup / "greet.py").unlink()
    answers_everywhere(three, "greet", None)
    assert everywhere(three, "backup") == everywhere(three, "secret") == everywhere(three, "cached") == [None] * 3
    # One server did it all, and the history says so.
    acting = holder(three)
    assert {v["deployed_by"] for v in history(three, "greet.py")} == {f"pickup@{acting}"}
    assert [v["action"] for v in history(three, "greet.py")] == ["deploy", "deploy", "undeploy"]
    assert servers_that_acted(three) == {acting}


UPSTREAM_V1 = {
    "shop/__init__.py": "",
    "shop/common.py": "def label():\n    return 'v1'\n",
    "shop/orders.py": service("orders", 1, ', "label": label()', "from shop.common import label"),
    "shop/old.py": service("old", 1),
    "shop/stays.py": service("stays", 1),
    "README.md": "# shop\n",
}


def test_a_git_pull_adds_changes_and_deletes_modules_at_once_on_every_server(three: Cluster, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    for rel, text in UPSTREAM_V1.items():
        write(upstream / rel, text)
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "v1")
    pickup = three.directory / "pickup"
    git(pickup, "clone", "-q", str(upstream), ".")
    answers_everywhere(three, "orders", {"name": "orders", "version": 1, "label": "v1"})
    answers_everywhere(three, "old", {"name": "old", "version": 1})

    # Upstream: common and orders change together (orders needs the new function), old goes, new comes.
    write(upstream / "shop/common.py", "def label():\n    return 'v2'\n\n\ndef tag():\n    return 'new'\n")
    write(
        upstream / "shop/orders.py",
        service("orders", 2, ', "label": label(), "tag": tag()', "from shop.common import label, tag"),
    )
    (upstream / "shop/old.py").unlink()
    write(upstream / "shop/extra/__init__.py", "")
    write(upstream / "shop/extra/new.py", service("new", 1, ', "tag": tag()', "from shop.common import tag"))
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "v2")
    git(pickup, "pull", "-q", "--ff-only")

    answers_everywhere(three, "orders", {"name": "orders", "version": 2, "label": "v2", "tag": "new"})
    answers_everywhere(three, "new", {"name": "new", "version": 1, "tag": "new"})
    answers_everywhere(three, "old", None)
    answers_everywhere(three, "stays", {"name": "stays", "version": 1})
    # The pull came as one batch: its deployments share one sequence number.
    pulled = {h[-1]["sequence"] for h in map(lambda p: history(three, p), ["shop/orders.py", "shop/common.py"])}
    pulled.add(history(three, "shop/extra/new.py")[-1]["sequence"])
    assert len(pulled) == 1
    assert len(history(three, "shop/stays.py")) == 1  # unchanged files are not deployed again
    acting = holder(three)
    assert servers_that_acted(three) == {acting}
    assert {v["deployed_by"] for p in ("shop/orders.py", "shop/old.py") for v in history(three, p)} == {
        f"pickup@{acting}"
    }
    # What the holder reports of its last batch, asked through another server.
    other = next(url for i, url in enumerate(three.urls) if f"server{i + 1}" != acting)
    report = admin_get(three, "pickup", other)["dirs"][0]
    assert report["holder"] == acting
    assert report["acting"] is False
    statuses = {o["path"]: o["status"] for o in report["last_batch"]["outcomes"]}
    assert statuses == {
        "shop/common.py": "deployed",
        "shop/orders.py": "deployed",
        "shop/extra/__init__.py": "deployed",
        "shop/extra/new.py": "deployed",
        "shop/old.py": "undeployed",
    }


BROKEN = """\
from splice.server import Service


class Broken(Service):
    def handle(self)
        pass
"""


def test_a_broken_file_does_not_hold_back_the_rest_of_its_batch(three: Cluster, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    write(staging / "good1.py", service("good1", 1))
    write(staging / "good2.py", service("good2", 1, imports="import json"))
    write(staging / "broken.py", BROKEN)
    write(staging / "needs_broken.py", service("needs-broken", 1, imports="import broken"))
    pickup = three.directory / "pickup"
    for path in sorted(staging.iterdir()):
        path.replace(pickup / path.name)
    answers_everywhere(three, "good1", {"name": "good1", "version": 1})
    answers_everywhere(three, "good2", {"name": "good2", "version": 1})
    acting = holder(three)
    eventually(lambda: "needs_broken.py: it needs broken, which failed" in log(three, acting), WAIT)
    assert f"pickup: failed: {pickup}/broken.py:5:" in log(three, acting)
    assert everywhere(three, "needs-broken") == [None] * 3
    # Fixed, it goes in, and the module that needed it with it once it is saved again.
    write(pickup / "broken.py", service("broken", 1))
    answers_everywhere(three, "broken", {"name": "broken", "version": 1})
    write(pickup / "needs_broken.py", service("needs-broken", 2, imports="import broken"))
    answers_everywhere(three, "needs-broken", {"name": "needs-broken", "version": 2})


def test_a_deleted_module_still_imported_stays_and_the_log_says_why(three: Cluster) -> None:
    pickup = three.directory / "pickup"
    write(pickup / "base.py", service("base", 1) + "\n\nVALUE = 1\n")
    write(pickup / "user.py", service("user", 1, ', "value": VALUE', "from base import VALUE"))
    answers_everywhere(three, "user", {"name": "user", "version": 1, "value": 1})
    (pickup / "base.py").unlink()
    acting = holder(three)
    eventually(
        lambda: f"pickup: cannot undeploy {pickup}/base.py: still imported by user.py" in log(three, acting), WAIT
    )
    assert everywhere(three, "base") == [{"name": "base", "version": 1}] * 3
    # Once user.py goes too, so does base.py: the next batch tries it again.
    (pickup / "user.py").unlink()
    answers_everywhere(three, "user", None)
    answers_everywhere(three, "base", None)


def test_a_configuration_file_is_applied_or_said_to_be_unsupported(three: Cluster) -> None:
    pickup = three.directory / "pickup"
    write(pickup / "hello.py", service("hello", 1))
    write(pickup / "splice.toml", '[[channels]]\nname = "hello"\npath = "/hello"\nservice = "hello"\n')
    acting = holder(three)
    if admin_get(three, "pickup")["config_files"] == "supported":

        def channel_everywhere() -> bool:
            return all(
                httpx.get(f"{url}/hello", timeout=10).json() == {"name": "hello", "version": 1} for url in three.urls
            )

        eventually(channel_everywhere, WAIT)
    else:
        eventually(lambda: "configuration files are not supported yet" in log(three, acting), WAIT)


def test_changes_made_while_the_cluster_was_stopped_are_deployed_at_start(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2)
    pickup = made.directory / "pickup"
    api_module = tmp_path / "project" / "api.py"
    write(api_module, service("api", 1))
    splice("start", str(made.directory))
    try:
        write(pickup / "a.py", service("a", 1))
        write(pickup / "b.py", service("b", 1))
        answers_everywhere(made, "a", {"name": "a", "version": 1})
        answers_everywhere(made, "b", {"name": "b", "version": 1})
        splice("deploy", str(api_module), "--cluster", str(made.directory), "--root", str(api_module.parent))
        splice("stop", str(made.directory))
        write(pickup / "a.py", service("a", 2))
        (pickup / "b.py").unlink()
        write(pickup / "pkg" / "__init__.py", "")
        write(pickup / "pkg" / "c.py", service("c", 1))
        splice("start", str(made.directory))
        answers_everywhere(made, "a", {"name": "a", "version": 2})
        answers_everywhere(made, "c", {"name": "c", "version": 1})
        answers_everywhere(made, "b", None)
        # Deployed by other means, so never undeployed because no file of the pickup directory holds it.
        assert everywhere(made, "api") == [{"name": "api", "version": 1}] * 2
        assert history(made, "a.py")[-1]["deployed_by"] == f"pickup@{holder(made)}"
    finally:
        splice("stop", str(made.directory), check=False)


def test_when_the_holder_is_killed_another_server_takes_over(three: Cluster) -> None:
    pickup = three.directory / "pickup"
    write(pickup / "first.py", service("first", 1))
    answers_everywhere(three, "first", {"name": "first", "version": 1})
    killed = holder(three)
    pid = int((three.directory / killed / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    survivors = [url for i, url in enumerate(three.urls) if f"server{i + 1}" != killed]
    write(pickup / "second.py", service("second", 1))
    answers_everywhere(three, "second", {"name": "second", "version": 1}, survivors)

    def taken_over() -> str | None:
        found = admin_get(three, "pickup", survivors[0])["dirs"][0]["holder"]
        return found if found not in (None, killed) else None

    successor = eventually(taken_over, WAIT)
    assert history(three, "second.py", survivors[0])[-1]["deployed_by"] == f"pickup@{successor}"
    # The successor watches too: a file saved now is deployed by it.
    write(pickup / "third.py", service("third", 1))
    answers_everywhere(three, "third", {"name": "third", "version": 1}, survivors)
    assert history(three, "third.py", survivors[0])[-1]["deployed_by"] == f"pickup@{successor}"


def test_a_pickup_directory_removed_and_cloned_again_is_watched_again(three: Cluster, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    write(upstream / "again.py", service("again", 1))
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "v1")
    pickup = three.directory / "pickup"
    write(pickup / "before.py", service("before", 1))
    answers_everywhere(three, "before", {"name": "before", "version": 1})
    # The watched directory itself goes away and a new one takes its place.
    shutil.rmtree(pickup)
    git(three.directory, "clone", "-q", str(upstream), "pickup")
    answers_everywhere(three, "again", {"name": "again", "version": 1})
    answers_everywhere(three, "before", None)
    write(pickup / "later.py", service("later", 1))
    answers_everywhere(three, "later", {"name": "later", "version": 1})


def test_a_saved_file_comes_to_the_peers_in_the_redis_notice(tmp_path: Path, redis_server: Any) -> None:
    """A save is one deployment: over the Redis bus its notice carries it, so the peers load it without reading
    the ODB (``read_ms`` 0 in their lines of the batch)."""
    made = make_cluster(tmp_path / "cluster", servers=3, redis=redis_server.url)
    with running(made):
        pickup = made.directory / "pickup"
        holder(made)
        write(pickup / "saved.py", service("saved", 1))
        answers_everywhere(made, "saved", {"name": "saved", "version": 1})
        write(pickup / "saved.py", service("saved", 2))
        answers_everywhere(made, "saved", {"name": "saved", "version": 2})

        def last_batch() -> Any:
            dirs = [d for url in made.urls for d in admin_get(made, "pickup", url)["dirs"] if d.get("last_batch")]
            batch = dirs[0]["last_batch"] if dirs else None
            return batch if batch and batch.get("sequence") and len(batch.get("servers", [])) == 3 else None

        batch = eventually(last_batch, WAIT)
        peers = batch["servers"][1:]
        assert {p.get("via") for p in peers} == {"redis"}, peers
        assert [p.get("read_ms") for p in peers] == [0.0, 0.0], peers
