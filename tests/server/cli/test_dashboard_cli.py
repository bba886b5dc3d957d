"""``splice create dashboard`` (in a cluster directory, and on its own), ``splice dashboard user ...`` and the
dashboard ``splice quickstart create`` makes: the real command, real files, nothing started."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from splice.dashboard import Users
from tests.conftest import free_port, make_cluster, splice


def run(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``splice`` command with ``$SPLICE_DASHBOARD_PASSWORD`` set to ``password`` (or unset)."""
    gone = ("SPLICE_DASHBOARD_PASSWORD", "SPLICE_CLUSTER", "BROWSER", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in gone}
    if password is not None:
        env["SPLICE_DASHBOARD_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("splice: "), line
    return line


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def dashboard_toml(directory: Path) -> dict:
    return tomllib.loads((directory / "dashboard.toml").read_text())["dashboard"]


def test_create_in_a_cluster_directory_keeps_cluster_toml_comments(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2)
    config = made.directory / "cluster.toml"
    config.write_text("# ours: keep me\n" + config.read_text().replace("[deploy]", "[deploy]  # deploy limits"))
    port = free_port()

    created = splice("create", "dashboard", "--cluster", str(made.directory), "--port", str(port), "--name", "web")
    assert f"dashboard: http://127.0.0.1:{port}" in created.stdout
    assert "warning" not in created.stdout
    table = dashboard_toml(made.directory / "web")
    assert table["admin"] == made.urls  # no load balancer: every server
    assert table["token_file"] == "../admin-token"
    assert (table["cluster"], table["host"], table["port"]) == ("cluster", "127.0.0.1", port)
    text = config.read_text()
    assert tomllib.loads(text)["dashboard"] == {"dir": "web"}
    assert "# ours: keep me" in text
    assert "[deploy]  # deploy limits" in text
    assert not (made.directory / "web" / "users.json").exists()  # users are made with 'splice dashboard user'

    again = splice("create", "dashboard", "--cluster", str(made.directory), check=False)
    assert "has a dashboard already" in error_line(again)
    status = splice("status", str(made.directory), check=False)
    assert f"dashboard  http://127.0.0.1:{port}  pid -  DOWN" in status.stdout


def test_create_a_dashboard_of_its_own(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-admin-token\n")
    directory = tmp_path / "dash"
    port = free_port()
    args = ["--token-file", str(token_file), "--cluster-name", "shop", "--port", str(port)]
    created = splice(
        "create", "dashboard", str(directory), "--admin-url", "http://10.0.0.5:17010/", "--admin-url", "http://10.0.0.6:17010",
        *args, "--host", "0.0.0.0",
    )  # fmt: skip
    assert f"dashboard: http://0.0.0.0:{port}" in created.stdout
    assert "warning: listening on 0.0.0.0 exposes the login page" in created.stdout
    table = dashboard_toml(directory)
    assert table["admin"] == ["http://10.0.0.5:17010", "http://10.0.0.6:17010"]
    assert (table["cluster"], table["token_file"]) == ("shop", "admin-token")
    assert (directory / "admin-token").read_text().strip() == "s3cret-admin-token"
    assert mode(directory / "admin-token") == 0o600

    missing = splice("create", "dashboard", str(tmp_path / "other"), "--admin-url", "http://h:1", check=False)
    assert "needs --token-file, --cluster-name" in error_line(missing)
    not_empty = splice("create", "dashboard", str(directory), "--admin-url", "http://h:1", *args, check=False)
    assert "not empty" in error_line(not_empty)
    bad_url = splice("create", "dashboard", str(tmp_path / "x"), "--admin-url", "h:1", *args, check=False)
    assert "--admin-url must be an http://" in error_line(bad_url)


def test_quickstart_makes_a_dashboard_with_a_first_user(tmp_path: Path) -> None:
    directory = tmp_path / "shop"
    port = free_port()
    created = splice("quickstart", "create", str(directory), "--port", str(port), "--no-load-balancer")
    dash = directory / "dashboard"
    table = dashboard_toml(dash)
    assert table["port"] == port - 1 or table["port"] > port + 2  # the port before the balancer's, or a free one
    line = f"dashboard: http://127.0.0.1:{table['port']} (user admin, password in {dash}/initial-password)"
    assert line in created.stdout.splitlines()
    assert mode(dash / "initial-password") == 0o600
    assert mode(dash / "users.json") == 0o600
    password = (dash / "initial-password").read_text().strip()
    assert len(password) >= 16
    assert password not in (dash / "users.json").read_text()
    user = Users(dash / "users.json").verify("admin", password)
    assert user is not None
    assert user.role == "admin"
    assert tomllib.loads((directory / "cluster.toml").read_text())["dashboard"] == {"dir": "dashboard"}
    assert dashboard_toml(dash)["admin"] == [f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port + 2}"]

    skipped = tmp_path / "plain"
    plain = splice("quickstart", "create", str(skipped), "--port", str(free_port()), "--no-dashboard")
    assert "dashboard" not in plain.stdout
    assert not (skipped / "dashboard").exists()
    assert "dashboard" not in tomllib.loads((skipped / "cluster.toml").read_text())


@pytest.fixture
def dash_dir(tmp_path: Path) -> Path:
    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n")
    directory = tmp_path / "dash"
    splice(
        "create", "dashboard", str(directory), "--admin-url", "http://127.0.0.1:1", "--token-file", str(token_file),
        "--cluster-name", "c", "--port", str(free_port()),
    )  # fmt: skip
    return directory


def test_users_create_password_delete_list(dash_dir: Path) -> None:
    where = ("--cluster", str(dash_dir))
    created = run("dashboard", "user", "create", "alice", "--role", "viewer", *where, password="first-password")
    assert created.returncode == 0, created.stderr
    assert "created dashboard user alice (viewer)" in created.stdout
    users_file = dash_dir / "users.json"
    assert mode(users_file) == 0o600
    assert "first-password" not in users_file.read_text()
    assert Users(users_file).verify("alice", "first-password") is not None

    wrong_role = run("dashboard", "user", "create", "mallory", "--role", "root", *where, password="first-password")
    assert "--role must be one of admin, viewer, got 'root'" in error_line(wrong_role)
    assert wrong_role.returncode == 1
    twice = run("dashboard", "user", "create", "alice", *where, password="first-password")
    assert "there is a user named 'alice' already" in error_line(twice)
    short = run("dashboard", "user", "create", "bob", *where, password="short")
    assert "too short" in error_line(short)
    no_password = run("dashboard", "user", "create", "bob", *where)  # no variable, no terminal to ask on
    assert "no password: set $SPLICE_DASHBOARD_PASSWORD" in error_line(no_password)
    assert Users(users_file).get("bob") is None

    changed = run("dashboard", "user", "password", "alice", *where, password="second-password")
    assert changed.returncode == 0, changed.stderr
    users = Users(users_file)
    assert users.verify("alice", "second-password") is not None
    assert users.verify("alice", "first-password") is None
    assert "second-password" not in users_file.read_text()
    unknown = run("dashboard", "user", "password", "nobody", *where, password="second-password")
    assert "no dashboard user named 'nobody' (users: alice)" in error_line(unknown)

    listed = run("dashboard", "user", "list", *where)
    assert listed.stdout.splitlines() == ["alice  viewer"]
    deleted = run("dashboard", "user", "delete", "alice", *where)
    assert deleted.returncode == 0, deleted.stderr
    assert Users(users_file).names() == []
    again = run("dashboard", "user", "delete", "alice", *where)
    assert "no dashboard user named 'alice'" in error_line(again)


def test_user_commands_find_the_dashboard_of_a_cluster_directory(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster")
    missing = run("dashboard", "user", "list", "--cluster", str(made.directory))
    assert "has no dashboard: 'splice create dashboard --cluster" in error_line(missing)
    splice("create", "dashboard", "--cluster", str(made.directory), "--port", str(free_port()))
    created = run("dashboard", "user", "create", "ops", "--cluster", str(made.directory), password="ops-password")
    assert created.returncode == 0, created.stderr
    assert Users(made.directory / "dashboard" / "users.json").get("ops") is not None
    opened = run("dashboard", "open", "--cluster", str(made.directory))  # no $BROWSER, no display: prints it
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == dashboard_url(made.directory / "dashboard")


def dashboard_url(directory: Path) -> str:
    table = dashboard_toml(directory)
    return f"http://{table['host']}:{table['port']}"
