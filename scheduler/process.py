"""One scheduler process: ``splice scheduler run DIR --name NAME`` (what ``splice start`` launches).

It logs to ``<cluster>/<name>/logs/scheduler.log`` and keeps ``<cluster>/<name>/scheduler.state`` (JSON:
pid, ``starting``/``active``/``standby``/``stopped``, since when) for ``splice start`` and ``splice status``.
SIGTERM or SIGINT: stop taking slots, wait a little for runs under way, record them, give the lease back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

from splice.server.config import Settings, load_settings
from splice.server.core import ConfigError
from splice.server.jobs import SCHEDULER_STATE_FILE
from splice.server.logs import configure_server_logging

from .runner import Scheduler

logger = logging.getLogger(__name__)


def state_file(settings: Settings, name: str) -> Path:
    return settings.server_dir(name) / SCHEDULER_STATE_FILE


def _write_state(path: Path, state: str) -> None:
    partial = path.with_name(path.name + ".new")
    partial.write_text(json.dumps({"pid": os.getpid(), "state": state, "since": time.time()}), encoding="utf-8")
    os.replace(partial, path)


def check_name(settings: Settings, name: str) -> None:
    if name not in settings.scheduler.names:
        known = ", ".join(settings.scheduler.names) or "none: add one with 'splice create scheduler DIR'"
        raise ConfigError(str(settings.directory / "cluster.toml"), f"no scheduler named '{name}' (known: {known})")


async def run(settings: Settings, name: str, stop: asyncio.Event) -> None:
    from splice.server.cluster.credentials import internal_token
    from splice.server.odb import OdbRepository, connect, require_head

    engine = connect(settings.odb_url)
    try:
        await require_head(engine, settings.odb_url, settings.directory)
        repository = OdbRepository(engine, settings.cluster_name)
        await repository.ensure_cluster(internal_token(settings))
        scheduler = Scheduler(name, repository, settings.scheduler)
        path = state_file(settings, name)
        scheduler.on_state = lambda state: _write_state(path, state)
        _write_state(path, "starting")
        logger.info("scheduler %s started (holder %s), waiting for the lease", name, scheduler.holder)
        await scheduler.run(stop)
        _write_state(path, "stopped")
        logger.info("scheduler %s stopped", name)
    finally:
        await engine.dispose()


def run_scheduler(directory: Path, name: str) -> None:
    """Run scheduler ``name`` of the cluster in ``directory`` in the foreground until SIGTERM or SIGINT."""
    settings = load_settings(directory, os.environ)
    check_name(settings, name)
    configure_server_logging(settings.server_dir(name) / "logs" / "scheduler.log", settings.log_level, settings.logs)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per dispatch would drown what matters

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, name, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
