"""``splice vscode launch`` and ``splice pycharm setup``: write an editor's files for debugging a cluster.

A command module of the ``splice`` command (see ``EXTENSIONS``). What the files hold comes from
``splice.server.cli._ide_config`` (pure); this module reads the files already there, writes the new ones and says what
it wrote. Every new text is made before anything is written: a file that cannot be merged into changes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from . import _ide_config as ide
from ._process import CliError

PYCHARM_PORT = 5690
"""Where PyCharm's debug server listens unless ``--port`` says otherwise."""


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    project_help = "the project root, as given to 'splice deploy --root' (default: .)"
    vscode = sub.add_parser("vscode", help="VS Code: debug configurations for a cluster").add_subparsers(
        dest="action", required=True
    )
    launch = vscode.add_parser("launch", help="write PROJECT/.vscode/launch.json: attach to each server, or to all")
    cluster_arg(launch, positional=True)
    launch.add_argument("--project", type=Path, default=Path("."), metavar="ROOT", help=project_help)

    pycharm = sub.add_parser("pycharm", help="PyCharm: debug server, deploy on save, language server").add_subparsers(
        dest="action", required=True
    )
    setup = pycharm.add_parser(
        "setup", help="write PROJECT/.idea files: a Python Debug Server, a File Watcher, an LSP4IJ template"
    )
    cluster_arg(setup, positional=True)
    setup.add_argument("--project", type=Path, default=Path("."), metavar="ROOT", help=project_help)
    setup.add_argument(
        "--port",
        type=_port,
        default=PYCHARM_PORT,
        help=f"where PyCharm's debug server listens (default {PYCHARM_PORT})",
    )


def run(args: argparse.Namespace) -> int | None:
    if args.command == "vscode":
        return _vscode_launch(args)
    if args.command == "pycharm":
        return _pycharm_setup(args)
    return None


def splice_command() -> str:
    """The ``splice`` program of this installation, for the editor to run.

    The one beside this Python comes first: ``splice`` on ``PATH`` may be another installation's.
    """
    beside = Path(sys.executable).parent / "splice"
    if beside.is_file():
        return str(beside)
    return shutil.which("splice") or str(beside)


def _vscode_launch(args: argparse.Namespace) -> int:
    settings = load_settings(args.directory)
    project = _project(args.project)
    points = ide.attach_points(settings)
    path = project / ".vscode" / "launch.json"
    existing = _read(path)
    text = ide.merge_launch(existing, ide.launch(points), str(path))
    if existing is not None and ide.strip_jsonc(existing, str(path)) != existing:
        backup = path.with_name("launch.json.bak")
        _write(backup, existing)
        print(f"{path} had comments or trailing commas, which JSON cannot keep: the old file is {backup}")
    _write(path, text)
    kept = len(json.loads(text)["configurations"]) - len(points)
    others = f"; {kept} other configuration{'s' if kept != 1 else ''} kept" if kept else ""
    what = "servers" if len(points) == len(settings.servers) else "server processes (a configuration per worker)"
    print(f"wrote {path}: '{ide.PREFIX}attach to <server>' for {len(points)} {what} and '{ide.COMPOUND}'{others}")
    for point in points:
        host = ide.launch_configuration(point)["connect"]["host"]
        print(f"  {ide.point_label(point)}: {host}:{point['port']}, {project} -> {point['remote_root']}")
    print(_listening(settings))
    return 0


def _pycharm_setup(args: argparse.Namespace) -> int:
    settings = load_settings(args.directory)
    project = _project(args.project)
    _check_port(settings, args.port)
    points = ide.attach_points(settings)
    program = splice_command()
    cluster = str(settings.directory)
    idea = project / ".idea"
    run_configuration = idea / "runConfigurations" / ide.DEBUG_SERVER_FILE
    watchers = idea / "watcherTasks.xml"
    template = idea / ide.LSP4IJ_TEMPLATE_DIR
    texts = {
        run_configuration: ide.debug_server_configuration(points, args.port, first=ide.ide_root(settings)),
        watchers: ide.watcher_tasks(program, cluster, _read(watchers), str(watchers)),
    }
    texts.update({template / name: text for name, text in ide.lsp4ij_template(program, cluster).items()})
    for path, text in texts.items():
        _write(path, text)

    print(f"wrote {run_configuration}: '{ide.DEBUG_SERVER}' (Python Debug Server on port {args.port}), {project} ->")
    for point in points:
        print(f"  {ide.point_label(point)}: {point['remote_root']}")
    print(f"wrote {watchers}: File Watcher '{ide.WATCHER}', on each saved .py file:")
    print(f"  {program} deploy $FilePath$ --cluster {cluster} --root $ProjectFileDir$")
    print(f"wrote {template}: LSP4IJ template for '{program} lsp' (Settings > Languages & Frameworks >")
    print("  Language Servers > + > Template: Import from custom template...)")
    print(f"next: in PyCharm, Debug '{ide.DEBUG_SERVER}', then: splice debug pycharm {cluster} --port {args.port}")
    return 0


def _project(given: Path) -> Path:
    project = given.resolve()
    if not project.is_dir():
        raise CliError(f"the project root {given} is not a directory (--project)", 2)
    return project


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (1 to 65535)")
    return int(text)


def _check_port(settings: Settings, port: int) -> None:
    for point in ide.attach_points(settings):
        if point["port"] == port:
            raise CliError(
                f"--port {port} is {ide.point_label(point)}'s debugpy attach point ([debug] port = "
                f"{settings.debug.port} in cluster.toml): give PyCharm's debug server another port"
            )


def _listening(settings: Settings) -> str:
    if settings.debug.enabled:
        return "the attach points listen while the servers run ([debug] enabled = true)"
    return (
        f"the attach points listen once debugging is on: splice debug enable {settings.directory} "
        "(or [debug] enabled = true in cluster.toml)"
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: an editor watching the file never reads half of it."""
    partial = path.with_name(f".{path.name}.splice-partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc}") from None


__all__ = ["PYCHARM_PORT", "register", "run", "splice_command"]
