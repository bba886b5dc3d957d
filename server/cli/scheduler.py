"""``splice create scheduler`` and ``splice scheduler run`` (the processes themselves: ``_schedulers``).

A cluster directory names its schedulers in ``cluster.toml`` (``[[schedulers]] name = "scheduler1"``);
each runs as ``python -m splice.scheduler DIR --name NAME`` in ``DIR/NAME``, one active at a time.
``splice.scheduler`` is imported only when ``splice scheduler run`` runs: the server never depends on it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, load_settings
from ._config_edit import add_array_entry
from ._process import CliError
from .lb import create_subparsers


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    create = create_subparsers(sub).add_parser(
        "scheduler", help="add a scheduler to a cluster directory (two give a standby that takes over)"
    )
    cluster_arg(create, positional=True)
    create.add_argument("--name", help="default: scheduler<N>, the next free number")
    run = sub.add_parser("scheduler", help="run one scheduler in the foreground").add_subparsers(
        dest="action", required=True
    )
    foreground = run.add_parser("run", help="one scheduler of the cluster (what 'splice start' launches)")
    cluster_arg(foreground, positional=True)
    foreground.add_argument("--name", default="scheduler1")


def run(args: argparse.Namespace) -> int | None:
    if args.command == "create" and getattr(args, "what", None) == "scheduler":
        return _create(args.directory, args.name)
    if args.command == "scheduler":
        from splice.scheduler.process import run_scheduler

        run_scheduler(args.directory, args.name)
        return 0
    return None


def _create(directory: Path, name: str | None) -> int:
    settings = load_settings(directory, os.environ)
    taken = set(settings.scheduler.names) | {s.name for s in settings.servers}
    if name is None:
        name = next(f"scheduler{n}" for n in range(1, len(taken) + 2) if f"scheduler{n}" not in taken)
    elif name in taken:
        raise CliError(f"'{name}' is taken already in {settings.directory / CONFIG_FILE}: pick another --name", 2)
    path = settings.directory / CONFIG_FILE
    text = add_array_entry(path.read_text(encoding="utf-8"), "schedulers", {"name": name}, "add a scheduler")
    partial = path.with_name(CONFIG_FILE + ".new")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    (settings.server_dir(name) / "logs").mkdir(parents=True, exist_ok=True)
    print(f"added scheduler {name} to {path}; 'splice start {directory}' starts it")
    return 0


__all__ = ["register", "run"]
