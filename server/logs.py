"""Logging set-up for the server process and the CLI (the library itself never configures logging)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import LogSettings
from .core.context import CidFilter

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s [cid %(cid)s] %(message)s"


def configure_server_logging(log_file: Path, level: str, logs: LogSettings | None = None) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(CidFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # watchfiles says "N changes detected" at INFO on every batch; the pickup directory logs what it did.
    logging.getLogger("watchfiles").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO with its whole URL, query string (API keys travel there) included;
    # outgoing REST connections log their own line without it (splice.outgoing).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def access_logger(logs: LogSettings) -> logging.Logger | None:
    """Where one line per HTTP request goes (``None``: no access log)."""
    return None


__all__ = ["FORMAT", "access_logger", "configure_server_logging"]
