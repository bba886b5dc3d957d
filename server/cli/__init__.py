"""The ``splice`` command. Errors are one line on stderr and a non-zero exit, never a traceback.

Every command that acts on a cluster takes its directory as ``--cluster DIR`` (the commands that always
took it first also as ``DIR``), else from ``$SPLICE_CLUSTER``; ``_cluster_dir`` settles which, once, for all.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol, cast

import shtab

from ..core.errors import SpliceError
from ..loop import defer_httpx_cli
from ._process import CliError

EXTENSIONS: tuple[str, ...] = (
    "channels",
    "outgoing",
    "pubsub",
    "cache",
    "history",
    "lb",
    "distributed",
    "lsp",
    "scheduler",
    "dashboard",
    "jobs",
    "debug",
    "ide",
    "audit",
)
"""Command modules of their own (``register(subparsers, add_cluster_arg)`` and ``run(args) -> int | None``), in the
order they register. Imported only when the command line needs them (``needed_extensions``): ``splice server run``
and ``splice start`` import none, which is ~0.1-0.2 s of a server's start."""

COMMANDS: dict[str, tuple[str, ...]] = {
    "channel": ("channels",),
    "outgoing": ("outgoing",),
    "sub": ("pubsub",),
    "topic": ("pubsub",),
    "cache": ("cache",),
    "apply": ("history",),
    "history": ("history",),
    "rollback": ("history",),
    "create": ("lb", "distributed", "scheduler", "dashboard"),
    "remove": ("lb",),
    "lsp": ("lsp",),
    "scheduler": ("scheduler",),
    "dashboard": ("dashboard",),
    "job": ("jobs",),
    "debug": ("debug",),
    "pycharm": ("ide",),
    "vscode": ("ide",),
    "audit": ("audit",),
}
"""Which extensions register each top-level command (a test checks it against what they register)."""

CORE = frozenset(
    {"quickstart", "start", "stop", "status", "migrate", "server"}
    | {"deploy", "undeploy", "invoke", "services", "security"}
)
"""The commands this module registers itself: they need no extension."""

SHELLS = ("bash", "zsh")
"""The shells ``splice completion`` writes a script for."""

__all__ = ["main"]


class Extension(Protocol):
    def register(self, sub: Any, cluster_arg: Callable[..., None]) -> None: ...

    def run(self, args: argparse.Namespace) -> int | None: ...


def _cluster_arg(parser: argparse.ArgumentParser, *, positional: bool = False, option: bool = True) -> None:
    """The cluster directory of a command: ``--cluster DIR`` and, with ``positional``, ``DIR`` (both optional:
    ``$SPLICE_CLUSTER`` is the default). ``option=False`` where ``--cluster`` already means something else."""
    if positional:
        where = parser.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="the cluster directory")
        where.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    if option:
        text = "the cluster directory (default: $SPLICE_CLUSTER)"
        where = parser.add_argument("--cluster", type=Path, metavar="DIR", help=text)
        where.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    parser.set_defaults(cluster_forms=" or ".join(["DIR"] * positional + ["--cluster DIR"] * option))


def _cluster_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Settle the cluster directory of a command that acts on one into ``args.directory`` and ``args.cluster``."""
    forms = getattr(args, "cluster_forms", None)
    if forms is None:
        return
    positional = getattr(args, "directory", None)
    option = getattr(args, "cluster", None)
    if positional is not None and option is not None and positional != option:
        raise CliError(f"two cluster directories: {positional} and --cluster {option}; give one", 2)
    directory = positional or option or (Path(environ["SPLICE_CLUSTER"]) if environ.get("SPLICE_CLUSTER") else None)
    if directory is None:
        raise CliError(f"which cluster? give its directory ({forms}) or set $SPLICE_CLUSTER", 2)
    args.directory = args.cluster = directory


def _version() -> str:
    import importlib.metadata  # ~10 ms with the look-up: only for --version

    try:
        return importlib.metadata.version("splice")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        print(f"splice {_version()}")
        parser.exit()


def workers_arg(value: str) -> int | str:
    """``--workers`` (``cli.cluster.workers_arg``, imported when a command line gives it)."""
    from .cluster import workers_arg as check

    return check(value)


def extension(name: str) -> Extension:
    return cast(Extension, importlib.import_module(f"{__name__}.{name}"))


def needed_extensions(argv: Sequence[str]) -> tuple[str, ...]:
    """The extensions a command line needs: those of its command; none for the core ones; every one for help, the
    completion script, or a command this module does not know (argparse's error then lists every command)."""
    command = next((word for word in argv if not word.startswith("-")), None)
    before = argv[: argv.index(command)] if command else argv
    if "-h" in before or "--help" in before:
        return EXTENSIONS
    if command is None:
        return () if "--version" in before else EXTENSIONS
    return () if command in CORE else COMMANDS.get(command, EXTENSIONS)


def build_parser(extensions: Sequence[str] = EXTENSIONS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splice", description="Splice: a Python integration platform.")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quick = sub.add_parser("quickstart", help="create a local cluster").add_subparsers(dest="action", required=True)
    create = quick.add_parser("create", help="a new cluster directory: config, SQLite ODB, admin token, one server")
    create.add_argument("directory", type=Path)
    create.add_argument(
        "--port", type=int, default=17010, help="the load balancer's port; servers take the next ones (default 17010)"
    )
    create.add_argument("--servers", type=int, default=2, help="how many servers (default 2)")
    create.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        metavar="N",
        help="worker processes per server, sharing its port (a number, or auto: one per CPU; default 1)",
    )
    create.add_argument("--redis", help="Redis URL for the cluster bus (default: servers call each other over HTTP)")
    create.add_argument(
        "--load-balancer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an HAProxy in front of the servers (default: when haproxy is installed)",
    )
    create.add_argument("--odb", help="database URL (default: SQLite in the directory)")
    create.add_argument("--name", help="cluster name (default: the directory's name)")
    create.add_argument("--start", action="store_true", help="start the cluster right away")
    create.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a dashboard on the port before the load balancer's, with a user admin (default: yes)",
    )

    for name, text in (("start", "start every server; returns when all answer ping"), ("stop", "stop every server")):
        command = sub.add_parser(name, help=text)
        _cluster_arg(command, positional=True)
        command.add_argument("--timeout", type=float, default=30.0)
    status = sub.add_parser("status", help="which servers run and answer")
    _cluster_arg(status, positional=True)
    status.add_argument("--json", action="store_true")
    _cluster_arg(sub.add_parser("migrate", help="bring the ODB schema up to date"), positional=True)

    server = sub.add_parser("server", help="run one server in the foreground").add_subparsers(
        dest="action", required=True
    )
    run = server.add_parser(
        "run",
        help="one server of the cluster (what 'splice start' launches)",
        description="Run one server in the foreground. A server of several worker processes ([[servers]] workers = N "
        "in cluster.toml, or $SPLICE_WORKERS) runs as their supervisor: it starts them on the server's port, "
        "starts again one that dies, and stops them all on SIGTERM or Ctrl+C.",
    )
    _cluster_arg(run, positional=True)
    run.add_argument(
        "--server",
        default=os.environ.get("SPLICE_SERVER_NAME") or "server1",
        help="the server's name (default: $SPLICE_SERVER_NAME, else server1)",
    )
    run.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # which worker process (its supervisor starts it)
    run.add_argument("--log-format", choices=("text", "json"), help="default: [logs] format, $SPLICE_LOG_FORMAT")
    run.add_argument("--log-stdout", action="store_true", help="log to standard output ($SPLICE_LOG_STDOUT=1)")

    for name, text in (("deploy", "deploy Python files to the cluster"), ("undeploy", "remove deployed files")):
        command = sub.add_parser(name, help=text)
        files = command.add_argument("files", nargs="+", metavar="FILE", help="a .py file, or a directory of them")
        files.complete = shtab.FILE  # type: ignore[attr-defined]
        _cluster_arg(command)
        command.add_argument("--root", type=Path, default=Path("."), help="the project root (default: .)")

    invoke = sub.add_parser("invoke", help="call a service and print its response payload as JSON")
    invoke.add_argument("name")
    invoke.add_argument("--payload", help="JSON")
    _cluster_arg(invoke)

    services = sub.add_parser("services", help="list deployed services")
    _cluster_arg(services)
    services.add_argument("--json", action="store_true")

    security = sub.add_parser("security", help="security definitions of channels").add_subparsers(
        dest="action", required=True
    )
    sec_create = security.add_parser("create", help="secret from --password/--key or $SPLICE_SECRET")
    _cluster_arg(sec_create)
    sec_create.add_argument("--name", required=True)
    sec_create.add_argument("--kind", choices=["basic", "apikey"], required=True)
    sec_create.add_argument("--username")
    sec_create.add_argument("--password")
    sec_create.add_argument("--key")
    sec_create.add_argument("--header", help="API key header (default X-API-Key)")
    _cluster_arg(security.add_parser("list", help="every security definition (no secrets)"))
    sec_delete = security.add_parser("delete", help="remove a security definition")
    sec_delete.add_argument("name")
    _cluster_arg(sec_delete)
    for name in extensions:
        extension(name).register(sub, _cluster_arg)
    completion = sub.add_parser("completion", help="print a shell completion script: source <(splice completion bash)")
    completion.add_argument("shell", choices=SHELLS)
    return parser


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "completion":
        print(shtab.complete(build_parser(), shell=args.shell), end="")
        return 0
    if command == "quickstart":
        return _quickstart(args)
    if command == "start":
        from . import cluster

        for server in cluster.start(args.directory, args.timeout):
            if server.get("error"):  # a part that could not start (HAProxy not installed); the rest runs
                print(f"splice: {server['error']}", file=sys.stderr)
                continue
            state = "started" if server["started"] else "already running"
            where = server.get("url") or f"scheduler, {server.get('state')}"
            print(f"{server['name']} {state}: {where} (pid {server['pid']})")
            for worker in server.get("workers", []):
                print(f"  worker {worker['worker']}: {worker['url']} (pid {worker['pid']})")
        return 0
    if command == "stop":
        from . import cluster

        for server in cluster.stop(args.directory, args.timeout):
            print(f"{server['name']} {'stopped' if server['stopped'] else 'was not running'}")
        return 0
    if command == "status":
        return _status(args)
    if command == "migrate":
        from . import cluster

        cluster.migrate(args.directory)
        print("the ODB schema is up to date")
        return 0
    if command == "server":
        import asyncio

        from ..bootstrap import run_server
        from ..config import load_settings
        from ..environment import register_admin_token

        _log_options(args)
        settings = load_settings(args.directory, os.environ)  # refused here, before anything starts, if wrong
        if settings.from_environment:  # no cluster.toml: configured by SPLICE_* alone (a container)
            asyncio.run(register_admin_token(settings))
        return run_server(args.directory, args.server, args.worker) or 0
    return _run_client(args)


def _log_options(args: argparse.Namespace) -> None:
    """``server run``'s log options, passed down as the environment variables the settings and logs read."""
    if args.log_format:
        os.environ["SPLICE_LOG_FORMAT"] = args.log_format
    if args.log_stdout:
        os.environ["SPLICE_LOG_STDOUT"] = "1"


def _quickstart(args: argparse.Namespace) -> int:
    from . import cluster

    created = cluster.quickstart_create(
        args.directory,
        args.port,
        args.odb,
        args.name,
        args.servers,
        args.redis,
        args.load_balancer,
        args.dashboard,
        args.workers,
    )
    print(f"created cluster '{created['cluster']}' in {created['directory']}")
    print(f"admin token: {created['directory']}/admin-token; servers: {', '.join(created['servers'])}")
    if created["load_balancer"]:
        print(f"load balancer (HAProxy): {created['load_balancer']}")
    elif args.load_balancer is None:
        print("no load balancer: haproxy is not installed (apt-get install haproxy), call the servers directly")
    print(f"pickup directory: {', '.join(created['pickup'])} (files saved there are deployed to every server)")
    print(f"scheduler: {', '.join(created['schedulers'])} (runs jobs: 'splice job create --help')")
    if created["dashboard"]:
        made = created["dashboard"]
        print(f"dashboard: {made['url']} (user admin, password in {made['password_file']})")
    if args.start:
        return _run(argparse.Namespace(command="start", directory=args.directory, timeout=30.0))
    print(f"start it with: splice start {args.directory}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from . import cluster

    result = cluster.status(args.directory)
    balancer, dashboard = result.get("load_balancer"), result.get("dashboard")
    if args.json:
        _print_json(result)
    else:
        for server in result["servers"]:
            health = "healthy" if server["healthy"] else "DOWN"
            print(f"{server['name']}  {server['url']}  pid {server['pid'] or '-'}  {health}")
            for worker in server.get("workers", []):
                health = "healthy" if worker["healthy"] else "DOWN"
                where = worker["url"] or "-"
                print(f"  worker {worker['worker']}  {where}  pid {worker['pid'] or '-'}  {health}")
        for part in result["schedulers"]:
            print(f"{part['name']}  scheduler  pid {part['pid'] or '-'}  {part['state']}")
        if balancer:
            health = "healthy" if balancer["healthy"] else "DOWN"
            print(f"load-balancer  {balancer['url']}  pid {balancer['pid'] or '-'}  {health}")
        if dashboard:
            health = "healthy" if dashboard["healthy"] else "DOWN"
            print(f"dashboard  {dashboard['url']}  pid {dashboard['pid'] or '-'}  {health}")
    healthy = all(s["healthy"] for s in result["servers"]) and (not balancer or balancer["healthy"])
    healthy = healthy and (not dashboard or dashboard["healthy"])
    healthy = healthy and all(s["state"] in ("active", "standby") for s in result["schedulers"])
    return 0 if healthy else 3


def _run_client(args: argparse.Namespace) -> int:
    from . import commands

    command = args.command
    for name in () if command in CORE else COMMANDS.get(command, EXTENSIONS):
        answered = extension(name).run(args)
        if answered is not None:
            return answered
    directory: Path = args.cluster  # every command below takes one, settled by _cluster_dir
    if command == "deploy":
        lines, code = commands.deploy(args.files, directory, args.root)
        print("\n".join(lines), file=sys.stderr if code == 1 else sys.stdout)
        return code
    if command == "undeploy":
        print("\n".join(commands.undeploy(args.files, directory, args.root)))
        return 0
    if command == "invoke":
        _print_json(commands.invoke(args.name, args.payload, directory))
        return 0
    if command == "services":
        services = commands.call(directory, "GET", "/splice/admin/services")["services"]
        if args.json:
            _print_json(services)
        for svc in [] if args.json else services:
            print(f"{svc['name']}  ({svc['path']} v{svc['version']})")
        return 0
    if command == "security":
        return _security(args, directory)
    raise CliError(f"unknown command {command}", 2)


def _security(args: argparse.Namespace, directory: Path) -> int:
    from . import commands

    if args.action == "create":
        secret = (args.password if args.kind == "basic" else args.key) or os.environ.get("SPLICE_SECRET")
        if not secret:
            raise CliError("give the secret with --password/--key or in $SPLICE_SECRET", 2)
        body: dict[str, Any] = {"name": args.name, "kind": args.kind, "username": args.username, "header": args.header}
        body["password" if args.kind == "basic" else "key"] = secret
        commands.call(directory, "POST", "/splice/admin/security", {k: v for k, v in body.items() if v is not None})
        print(f"created {args.kind} security definition {args.name}")
    elif args.action == "list":
        for sec in commands.call(directory, "GET", "/splice/admin/security")["security"]:
            detail = f"user {sec['username']}" if sec["kind"] == "basic" else f"header {sec['header']}"
            print(f"{sec['name']}  {sec['kind']}  {detail}")
    else:
        commands.call(directory, "DELETE", f"/splice/admin/security/{args.name}")
        print(f"deleted security definition {args.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # what splice and the processes it starts make (cluster directory, ODB, logs) is owner-only
    defer_httpx_cli()  # 'splice start' imports the dashboard's settings, whose package imports httpx
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(needed_extensions(words)).parse_args(words)
    try:
        _cluster_dir(args, os.environ)
        return _run(args)
    except CliError as exc:
        print(f"splice: {exc}", file=sys.stderr)
        return exc.code
    except SpliceError as exc:
        print(f"splice: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (splice ... | head): no traceback now, none at exit's flush either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
