"""The container's entrypoint: ``server``, ``scheduler``, ``dashboard`` or ``migrate``, configured by the environment.

    server      splice server run $SPLICE_HOME       (SPLICE_ODB, SPLICE_SERVER_NAME, SPLICE_ADVERTISE, ...)
    scheduler   python -m splice.scheduler $SPLICE_HOME --name $SPLICE_SCHEDULER_NAME (default: the host name)
    dashboard   python -m splice.dashboard $SPLICE_HOME/dashboard, its dashboard.toml written from
                SPLICE_DASHBOARD_ADMIN (admin API base URLs, comma-separated), SPLICE_CLUSTER_NAME and
                SPLICE_ADMIN_TOKEN; a first user from SPLICE_DASHBOARD_USER and SPLICE_DASHBOARD_PASSWORD
    migrate     splice migrate $SPLICE_HOME          (an init container: the ODB schema up to date)
    health      the image's HEALTHCHECK: GET /splice/ping (server) or the dashboard's /healthz; a scheduler is
                healthy while it runs (its own liveness is its ODB lease)

The entrypoint replaces itself with the role's process (``exec``): Splice is the container's PID 1 and gets the
SIGTERM of a stop directly. Standard library only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROLES = ("server", "scheduler", "dashboard", "migrate", "health")
ROLE_FILE = ".role"
DEFAULT_HOME = "/var/lib/splice"


def home(env: Mapping[str, str]) -> Path:
    return Path(env.get("SPLICE_HOME") or DEFAULT_HOME)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prepare_dashboard(env: Mapping[str, str]) -> Path:
    """Write ``$SPLICE_HOME/dashboard/dashboard.toml`` and its token file (mode 0600) from the environment."""
    admin = [url.strip().rstrip("/") for url in env.get("SPLICE_DASHBOARD_ADMIN", "").split(",") if url.strip()]
    if not admin:
        raise SystemExit(
            "splice container: SPLICE_DASHBOARD_ADMIN is required (the admin API, e.g. http://splice:17010)"
        )
    token = env.get("SPLICE_ADMIN_TOKEN", "").strip()
    if not token:
        raise SystemExit("splice container: SPLICE_ADMIN_TOKEN is required (the token the dashboard calls with)")
    directory = home(env) / "dashboard"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = directory / "admin-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    lines = [
        "[dashboard]",
        f"cluster = {_toml(env.get('SPLICE_CLUSTER_NAME') or 'splice')}",
        f"host = {_toml(env.get('SPLICE_DASHBOARD_HOST') or '0.0.0.0')}",
        f"port = {int(env.get('SPLICE_DASHBOARD_PORT') or 17009)}",
        f"admin = [{', '.join(_toml(url) for url in admin)}]",
        'token_file = "admin-token"',
    ]
    (directory / "dashboard.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def _dashboard_user(env: Mapping[str, str], directory: Path) -> None:
    user = env.get("SPLICE_DASHBOARD_USER", "").strip()
    if not user or not env.get("SPLICE_DASHBOARD_PASSWORD") or (directory / "users.json").exists():
        return
    command = [sys.executable, "-m", "splice.server.cli", "dashboard", "user", "create", user, "--cluster"]
    subprocess.run([*command, str(directory)], check=True, env=dict(env), stdout=subprocess.DEVNULL)


def command(role: str, env: Mapping[str, str]) -> list[str]:
    """The command line of ``role`` (after what it needs on disk is written)."""
    where = str(home(env))
    if role == "server":
        return [sys.executable, "-m", "splice.server.cli", "server", "run", where]
    if role == "migrate":
        return [sys.executable, "-m", "splice.server.cli", "migrate", where]
    if role == "scheduler":
        name = env.get("SPLICE_SCHEDULER_NAME") or socket.gethostname()
        return [sys.executable, "-m", "splice.scheduler", where, "--name", name]
    if role == "dashboard":
        directory = prepare_dashboard(env)
        _dashboard_user(env, directory)
        return [sys.executable, "-m", "splice.dashboard", str(directory)]
    raise SystemExit(f"splice container: unknown role {role!r}; give one of {', '.join(ROLES)}")


def health(env: Mapping[str, str]) -> int:
    """0 when this container's process answers (what HEALTHCHECK runs), 1 otherwise."""
    try:
        role = (home(env) / ROLE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return 1
    if role == "scheduler":
        return 0
    if role == "dashboard":
        url = f"http://127.0.0.1:{env.get('SPLICE_DASHBOARD_PORT') or 17009}/healthz"
    else:
        url = f"http://127.0.0.1:{env.get('SPLICE_PORT') or 17010}/splice/ping"
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return 0 if answer.status == 200 else 1
    except (OSError, urllib.error.URLError):
        return 1


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else "server"
    env = dict(os.environ)
    if role == "health":
        return health(env)
    line = command(role, env)
    if role != "migrate":
        home(env).mkdir(parents=True, exist_ok=True)
        (home(env) / ROLE_FILE).write_text(role + "\n", encoding="utf-8")
    os.execv(line[0], [*line, *argv[2:]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
