"""Secrets stay secret: a quickstart cluster that used distinctive secrets through the CLI and the admin API keeps
none of them in clear in any file of its directory or in any answer, keeps every file owner-only, and its internal
credential cannot be read from the ODB (the defect: it was in ``clusters.internal_token``, in clear, and opened
``POST /splice/admin/deploy``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster, eventually, make_cluster, running

SECURITY_PASSWORD = "h1-security-" + secrets.token_hex(8)
OUTGOING_PASSWORD = "h1-outgoing-" + secrets.token_hex(8)
SERVICE = textwrap.dedent(
    """
    from splice.server import Service

    class Hello(Service):
        name = "h1.hello"

        def handle(self):
            self.response.payload = {"hello": "world"}
    """
)


def splice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"splice {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def everything(directory: Path) -> Iterator[Path]:
    yield directory
    for path in sorted(directory.rglob("*")):
        if not path.is_symlink():
            yield path


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, list[str]]]:
    """A quickstart cluster (HAProxy when installed, a dashboard) where the secrets were used; what the CLI said."""
    made = make_cluster(
        tmp_path_factory.mktemp("secrets") / "cluster",
        load_balancer=shutil.which("haproxy") is not None,
        dashboard=True,
    )
    with running(made) as cluster:
        directory = str(cluster.directory)
        source = cluster.directory.parent / "project" / "hello.py"
        source.parent.mkdir()
        source.write_text(SERVICE)
        said = [
            splice("deploy", str(source), "--cluster", directory, "--root", str(source.parent)),
            splice(
                "security", "create", "--cluster", directory, "--name", "h1-basic", "--kind", "basic",
                "--username", "alice", "--password", SECURITY_PASSWORD,
            ),
            splice(
                "channel", "create", "--cluster", directory, "--name", "h1-hello", "--path", "/h1/hello",
                "--service", "h1.hello", "--security", "h1-basic",
            ),
            splice(
                "outgoing", "create", "--cluster", directory, "--name", "h1-billing", "--kind", "rest",
                "--address", "http://127.0.0.1:9/billing", "--username", "bob", "--password-env", "H1_PASSWORD",
                env={"H1_PASSWORD": OUTGOING_PASSWORD},
            ),
            splice("outgoing", "list", "--cluster", directory),
            splice("security", "list", "--cluster", directory),
        ]  # fmt: skip
        with httpx.Client(base_url=cluster.url, timeout=30) as client:
            eventually(lambda: client.get("/h1/hello", auth=("alice", SECURITY_PASSWORD)).status_code == 200)
            assert client.get("/h1/hello", auth=("alice", SECURITY_PASSWORD + "x")).status_code == 401
            assert client.get("/h1/hello", params={"password": SECURITY_PASSWORD}).status_code == 401
        yield cluster, [r.stdout + r.stderr for r in said]


def secrets_of(cluster: Cluster) -> dict[str, str]:
    from splice.server.cluster.credentials import internal_token
    from splice.server.config import load_settings

    internal = internal_token(load_settings(cluster.directory, {}))
    assert len(internal) >= 32, f"the internal token is not derived: {internal!r}"
    return {
        "the security definition's password": SECURITY_PASSWORD,
        "the outgoing connection's password": OUTGOING_PASSWORD,
        "the admin token": cluster.token,
        "the internal token": internal,
    }


HOLDERS = {"the admin token": {"admin-token"}}
"""The files whose purpose is to hold that secret (mode 0600)."""


def test_no_file_of_the_cluster_holds_a_secret_in_clear(used: tuple[Cluster, list[str]]) -> None:
    cluster, _ = used
    found = []
    for path in everything(cluster.directory):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for what, value in secrets_of(cluster).items():
            if path.name not in HOLDERS.get(what, set()) and value.encode() in data:
                found.append(f"{what} in {path.relative_to(cluster.directory)}")
    assert not found


def test_no_answer_nor_cli_output_holds_a_secret(used: tuple[Cluster, list[str]]) -> None:
    cluster, said = used
    with cluster.admin() as admin:
        document = admin.get("/splice/admin/openapi.json").raise_for_status().json()
        paths = [p for p, ops in document["paths"].items() if "get" in ops and "{" not in p]
        paths += ["/splice/admin/outgoing/h1-billing", "/splice/admin/security/h1-basic", "/splice/metrics"]
        answers = {path: admin.get(path).text for path in paths}
    answers |= {f"CLI output {i}": text for i, text in enumerate(said)}
    assert len(answers) > 20
    found = [
        f"{what} in {where}" for where, text in answers.items() for what, value in secrets_of(cluster).items()
        if value in text
    ]  # fmt: skip
    assert not found


def test_every_file_of_the_cluster_is_owner_only(used: tuple[Cluster, list[str]]) -> None:
    cluster, _ = used
    names = {p.name for p in everything(cluster.directory)}
    assert {"admin-token", "secret-key", "users.json", "odb.sqlite", "odb.sqlite-wal", "odb.sqlite-shm"} <= names
    assert any(p.suffix == ".log" for p in everything(cluster.directory))
    wide = [
        f"{path.relative_to(cluster.directory.parent)}: {stat.S_IMODE(path.stat().st_mode):o}"
        for path in everything(cluster.directory)
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert not wide
    assert stat.S_IMODE(cluster.directory.stat().st_mode) == 0o700
    for name in ("admin-token", "secret-key", "odb.sqlite", "odb.sqlite-wal", "odb.sqlite-shm"):
        assert stat.S_IMODE((cluster.directory / name).stat().st_mode) == 0o600, name


def test_nothing_read_from_the_odb_opens_the_admin_api(used: tuple[Cluster, list[str]]) -> None:
    """The reproduction: every value a database reader finds in ``clusters`` and ``tokens`` (the internal token was
    one of them) is refused by ``POST /splice/admin/deploy``; the internal token is in no ODB file."""
    cluster, _ = used
    with sqlite3.connect(f"file:{cluster.directory / 'odb.sqlite'}?mode=ro", uri=True) as db:
        values = {
            value
            for table in ("clusters", "tokens")
            for row in db.execute(f"SELECT * FROM {table}")
            for value in row
            if isinstance(value, str) and len(value) >= 16
        }
    assert values, "the ODB has no cluster or token rows to try"
    body = {"modules": [{"path": "h1_pwned.py", "source": "x = 1\n"}]}
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        opened = [
            value[:8] + "..."
            for value in sorted(values)
            if client.post("/splice/admin/deploy", json=body, headers={"Authorization": f"Bearer {value}"}).status_code
            != 401
        ]
    assert not opened
    internal = secrets_of(cluster)["the internal token"].encode()
    for name in ("odb.sqlite", "odb.sqlite-wal"):
        assert internal not in (cluster.directory / name).read_bytes(), name
