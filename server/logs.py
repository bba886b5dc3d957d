"""Logging set-up for the server process and the CLI (the library itself never configures logging).

Two formats (``[logs] format``, ``$SPLICE_LOG_FORMAT``, ``splice server run --log-format``):

- ``text``: ``FORMAT``, one line per record (a traceback continues it), what ``GET /splice/admin/logs`` parses;
- ``json``: one JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``cid``,
  ``server``, ``process``; ``trace_id`` when the call carries a W3C trace (``core.tracing``); ``exception`` (the
  traceback's text) when there is one; and an access line's own fields (``ACCESS_FIELDS``).

Where: the file ``DIR/<server>/logs/<name>.log``, or standard output (a container's log) with
``$SPLICE_LOG_STDOUT=1`` or a log file named ``-``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import LogSettings
from .core import tracing
from .core.context import CidFilter
from .files import owner_only

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s [cid %(cid)s] %(message)s"
ACCESS = "splice.access"
"""The logger of the access log: one line per HTTP request (``http/app.py`` writes it, with the cid)."""
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "bytes", "client")
STDOUT = "-"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a newline in a message or a traceback is escaped)."""

    def __init__(self, server: str) -> None:
        super().__init__()
        self.server = server

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "cid": getattr(record, "cid", "-"),
            "server": self.server,
            "process": record.process,
        }
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            line["trace_id"] = trace_id
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=repr)


class TraceFilter(logging.Filter):
    """Puts the trace id of the call under way (``core.tracing``) on records, as ``trace_id`` (``None`` if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id = tracing.current_trace_id()
        return True


def to_stdout(log_file: Path) -> bool:
    """Whether logs go to standard output: a log file named ``-``, or ``$SPLICE_LOG_STDOUT`` set to a true value."""
    flag = os.environ.get("SPLICE_LOG_STDOUT", "").strip().lower() in ("1", "true", "yes", "on")
    return flag or str(log_file) == STDOUT


def configure_server_logging(log_file: Path, level: str, logs: LogSettings | None = None) -> None:
    """Send every record to ``log_file`` (or standard output: ``to_stdout``) in the format ``logs`` asks for."""
    logs = logs or LogSettings()
    handler: logging.Handler
    if to_stdout(log_file):
        handler = logging.StreamHandler(sys.stdout)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        owner_only(log_file.parent)  # a server started without splice's umask: its logs are still its own
        handler = logging.FileHandler(log_file, encoding="utf-8")
        owner_only(log_file)
    server = log_file.parent.parent.name if str(log_file) != STDOUT else ""
    handler.setFormatter(JsonFormatter(server) if logs.format == "json" else logging.Formatter(FORMAT))
    handler.addFilter(CidFilter())
    handler.addFilter(TraceFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # watchfiles says "N changes detected" at INFO on every batch; the pickup directory logs what it did.
    logging.getLogger("watchfiles").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO with its whole URL, query string (API keys travel there) included;
    # outgoing REST connections log their own line without it (splice.outgoing).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # The access log is asked for on its own ([logs] access), whatever the level.
    logging.getLogger(ACCESS).setLevel(logging.INFO if logs.access else logging.WARNING)


def access_logger(logs: LogSettings) -> logging.Logger | None:
    """Hypercorn's own access log: ``None``, always. Its lines lack the cid (the call's context is gone by the time
    it writes) and hold the query string (where API keys travel): ``http/app.py`` writes ``splice.access`` lines
    itself when ``logs.access`` is set."""
    return None


__all__ = [
    "ACCESS",
    "ACCESS_FIELDS",
    "FORMAT",
    "JsonFormatter",
    "TraceFilter",
    "access_logger",
    "configure_server_logging",
    "to_stdout",
]
