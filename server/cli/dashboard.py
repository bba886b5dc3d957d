"""``splice create dashboard`` and ``splice dashboard user|open`` (the process itself: ``_dashboards``).

    splice create dashboard --cluster DIR [--port P] [--host H] [--name dashboard]     # DIR/<name>, in cluster.toml
    splice create dashboard DIR --admin-url URL... --token-file FILE --cluster-name NAME  # on a host of its own
    splice dashboard user create|delete|password NAME [--role admin|viewer] --cluster DIR
    splice dashboard user list --cluster DIR
    splice dashboard open --cluster DIR

A password is read from ``$SPLICE_DASHBOARD_PASSWORD`` or asked for, never taken from an argument (it would
be in the shell's history and in every process listing). ``splice.dashboard`` is imported only here, inside
the functions: the server never depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shtab

from ..config import CONFIG_FILE, load_settings
from . import _dashboards as dashboards
from ._process import CliError
from .lb import create_subparsers

PASSWORD_VARIABLE = "SPLICE_DASHBOARD_PASSWORD"


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    create = create_subparsers(sub).add_parser(
        "dashboard", help="a web dashboard: in a cluster directory (--cluster DIR), or a directory of its own"
    )
    where = create.add_argument(
        "directory", nargs="?", type=Path, metavar="DIR", help="a new dashboard directory (with --admin-url)"
    )
    where.complete = shtab.DIRECTORY
    create.add_argument(
        "--cluster",
        dest="cluster_dir",
        type=Path,
        metavar="DIR",
        help="the cluster directory (default: $SPLICE_CLUSTER)",
    )
    create.add_argument("--name", default=dashboards.NAME, help="its directory in the cluster's (default: dashboard)")
    create.add_argument("--host", default="127.0.0.1", help="where it listens (default 127.0.0.1)")
    create.add_argument("--port", type=int, help="default: the load balancer's port - 1 (17009), else a free one")
    create.add_argument(
        "--admin-url", action="append", metavar="URL", help="alone: the admin API (load balancer, or each server)"
    )
    create.add_argument("--token-file", type=Path, help="alone: a file holding the cluster's admin token (copied)")
    create.add_argument("--cluster-name", help="alone: the name of the cluster it administers")

    dashboard = sub.add_parser("dashboard", help="the dashboard's users, and its URL").add_subparsers(
        dest="action", required=True
    )
    users = dashboard.add_parser("user", help="who may log in to the dashboard").add_subparsers(
        dest="user_action", required=True
    )
    for action, text in (
        ("create", f"a new user; the password from ${PASSWORD_VARIABLE} or asked for"),
        ("delete", "remove a user"),
        ("password", f"a new password for a user, from ${PASSWORD_VARIABLE} or asked for"),
    ):
        command = users.add_parser(action, help=text)
        command.add_argument("name")
        if action == "create":
            command.add_argument("--role", default="admin", help="admin (changes things) or viewer (default admin)")
        cluster_arg(command)
    cluster_arg(users.add_parser("list", help="every user and role"))
    cluster_arg(dashboard.add_parser("open", help="print the dashboard's URL and open it in a browser"))


def run(args: argparse.Namespace) -> int | None:
    if args.command == "create" and getattr(args, "what", None) == "dashboard":
        return _create(args)
    if args.command != "dashboard":
        return None
    directory = dashboards.dashboard_of(args.cluster)
    if args.action == "open":
        return _open(directory)
    return _user(args, directory)


# -- create ----------------------------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port must be between 1 and 65535, got {args.port}", 2)
    if args.admin_url or args.token_file or args.cluster_name:
        made = _create_alone(args)
        start = made["directory"]
    else:
        start = args.cluster_dir or args.directory or os.environ.get("SPLICE_CLUSTER")
        if start is None:
            raise CliError(
                "which cluster? give --cluster DIR (or set $SPLICE_CLUSTER); a dashboard of its own needs DIR "
                "--admin-url URL --token-file FILE --cluster-name NAME",
                2,
            )
        settings = load_settings(Path(start), os.environ)
        made = dashboards.create_in_cluster(settings, name=args.name, host=args.host, port=args.port)
        print(f'added the dashboard to {settings.directory / CONFIG_FILE}: [dashboard] dir = "{args.name}"')
    print(f"dashboard: {made['url']} (directory {made['directory']})")
    if args.host not in dashboards.LOOPBACK:
        print(f"warning: listening on {args.host} exposes the login page beyond this host (TLS: tls_cert, tls_key)")
    print(f"add a user with: splice dashboard user create NAME --cluster {made['directory']}")
    print(f"start it with: splice start {start}")
    return 0


def _create_alone(args: argparse.Namespace) -> dict[str, Any]:
    missing = [
        flag
        for flag, value in (
            ("DIR", args.directory),
            ("--admin-url", args.admin_url),
            ("--token-file", args.token_file),
            ("--cluster-name", args.cluster_name),
        )
        if not value
    ]
    if missing or args.cluster_dir:
        what = f"needs {', '.join(missing)}" if missing else "takes no --cluster (that is for a cluster directory)"
        raise CliError(f"a dashboard of its own {what}: DIR --admin-url URL --token-file FILE --cluster-name NAME", 2)
    for url in args.admin_url:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--admin-url must be an http:// or https:// URL, got {url!r}", 2)
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})", 2) from None
    if not token:
        raise CliError(f"--token-file {args.token_file} is empty: it should hold the cluster's admin token", 2)
    directory: Path = args.directory.resolve()
    if (directory / CONFIG_FILE).exists():
        raise CliError(f"{directory} is a cluster directory: use 'splice create dashboard --cluster {directory}'", 2)
    if directory.exists() and any(directory.iterdir()):
        raise CliError(f"{directory} exists and is not empty; a new dashboard directory needs an empty or new one", 2)
    from splice.dashboard import DEFAULT_PORT

    port = args.port or dashboards.pick_port(args.host, DEFAULT_PORT, set())
    urls = [url.rstrip("/") for url in args.admin_url]
    dashboards.write_config(directory, args.cluster_name, args.host, port, urls, "admin-token")
    dashboards.write_secret(directory / "admin-token", token)
    return {"directory": directory, "url": dashboards.load(directory).url}


# -- users and open --------------------------------------------------------------------------------------------


def _password(ask_twice: bool) -> str:
    given = os.environ.get(PASSWORD_VARIABLE)
    if given:
        return given
    if not sys.stdin.isatty():
        raise CliError(f"no password: set ${PASSWORD_VARIABLE}, or run this in a terminal to be asked for it", 2)
    try:
        first = getpass.getpass("password: ")
        if ask_twice and getpass.getpass("password again: ") != first:
            raise CliError("the two passwords differ: nothing changed")
    except EOFError:
        raise CliError("no password given: nothing changed") from None
    return first


def _user(args: argparse.Namespace, directory: Path) -> int:
    from splice.dashboard import ROLES, UserError, Users

    users = Users(dashboards.load(directory).users_file)
    action = args.user_action
    try:
        if action == "list":
            for name in users.names():
                user = users.get(name)
                print(f"{name}  {user.role if user else '?'}")
            return 0
        if action == "create":
            if args.role not in ROLES:
                raise UserError(f"--role must be one of {', '.join(ROLES)}, got {args.role!r}")
            if users.get(args.name) is not None:  # refused before the prompt, not after
                raise UserError(f"there is a user named '{args.name}' already ('splice dashboard user password')")
            users.create(args.name, _password(True), args.role)
            print(f"created dashboard user {args.name} ({args.role})")
        elif action == "password":
            if users.get(args.name) is None:  # refused before the prompt, not after
                raise UserError(f"no dashboard user named '{args.name}' (users: {', '.join(users.names()) or 'none'})")
            users.set_password(args.name, _password(True))
            print(f"changed the password of dashboard user {args.name}")
        else:
            users.delete(args.name)
            print(f"deleted dashboard user {args.name}")
    except UserError as exc:
        raise CliError(f"{exc} ({users.path})") from None
    return 0


def _open(directory: Path) -> int:
    url = dashboards.load(directory).url
    print(url)
    # Only where a browser can be shown: without one, webbrowser may pick a text browser that takes the terminal.
    if any(os.environ.get(name) for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")):
        with contextlib.suppress(Exception):  # no browser, or one that fails: the URL printed is enough
            webbrowser.open(url)
    return 0


__all__ = ["register", "run"]
