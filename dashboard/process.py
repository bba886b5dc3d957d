"""One dashboard process: ``python -m splice.dashboard DIR`` (what ``splice start`` launches for a cluster that has
one). It logs to ``DIR/logs/dashboard.log``; SIGTERM or SIGINT ends it (open event streams are closed)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config

from splice.server.config import LogSettings
from splice.server.logs import configure_server_logging

from .app import create_app
from .config import load_dashboard_settings

logger = logging.getLogger(__name__)


def run_dashboard(directory: Path, environ: dict[str, str] | None = None) -> None:
    settings = load_dashboard_settings(directory, environ)
    # JSON lines when asked, as the servers log ($SPLICE_LOG_FORMAT; anything but "json" is text)
    fmt = "json" if (environ or os.environ).get("SPLICE_LOG_FORMAT", "").strip().lower() == "json" else "text"
    configure_server_logging(settings.log_file, settings.log_level, LogSettings(fmt))
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    config.graceful_timeout = 3.0
    if settings.tls:
        config.certfile = str(settings.tls_cert)
        config.keyfile = str(settings.tls_key)
    app = create_app(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("dashboard of cluster %s listening on %s", settings.cluster, settings.url)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        logger.info("dashboard stopped")

    asyncio.run(main())


__all__ = ["run_dashboard"]
