"""``GET /splice/admin/logs``: this server's own log, tailed and filtered (the dashboard's Logs screen).

The log is ``<server dir>/logs/server.log`` in ``splice.server.logs.FORMAT``: a record starts with a line
``<asctime> <level> <pid> <logger> [cid <cid>] <message>``; lines that do not start so (a traceback) continue it.
In the JSON format (``[logs] format = "json"``) each line is a record of its own (``logs.JsonFormatter``); a
file may hold both, from before and after a change of format.
A call reads at most ``MAX_READ`` bytes: the end of the file, or what follows the cursor of an earlier answer
(``<inode>:<byte offset>``, opaque to clients); a file replaced or cut shorter since is read from its start.
Reading and parsing run in a worker thread, off the event loop.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request

from .operations import Operation
from .schemas.observe import LEVELS, LogsAnswer, LogsQuery

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_READ = 2 * 1024 * 1024
"""The most bytes one call reads."""
SERVICE_LOGGER = "splice.service."
_RECORD = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\S+) (\d+) (\S+) \[cid ([^\]]*)\] ?(.*)")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Filter:
    """What a caller wants to see; empty strings match everything."""

    level: str = "DEBUG"
    service: str = ""
    cid: str = ""
    q: str = ""

    def __call__(self, line: dict[str, Any]) -> bool:
        if _RANK.get(line["level"], len(LEVELS)) < _RANK.get(self.level, 0):
            return False
        if self.service and line["service"] != self.service:
            return False
        if self.cid and line["cid"] != self.cid:
            return False
        return not self.q or self.q.lower() in line["message"].lower() or self.q.lower() in line["logger"].lower()


def parse_log(data: bytes, start: int = 0) -> list[tuple[dict[str, Any], int]]:
    """The records in ``data`` (complete lines of the log read from byte ``start``), oldest first, each with the
    byte offset just after it. Lines before the first record (the end of one cut by where the read started)
    are left out; a line that is not a record's first continues the one before."""
    records: list[tuple[dict[str, Any], int]] = []
    offset = start
    for raw in data.splitlines(keepends=True):
        offset += len(raw)
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        record = _json_record(text) if text.startswith("{") else None
        if record is not None:
            records.append((record, offset))
            continue
        found = _RECORD.fullmatch(text)
        if found is not None:
            at, level, pid, logger, cid, message = found.groups()
            service = logger[len(SERVICE_LOGGER) :] if logger.startswith(SERVICE_LOGGER) else None
            line = {
                "at": at,
                "level": level,
                "pid": int(pid),
                "logger": logger,
                "cid": cid,
                "message": message,
                "service": service or None,
            }
            records.append((line, offset))
        elif records:
            line, _ = records[-1]
            line["message"] += "\n" + text
            records[-1] = (line, offset)
    return records


def _json_record(text: str) -> dict[str, Any] | None:
    """A line of the JSON format (``logs.JsonFormatter``) as a record, or ``None`` if it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message"), str) or "level" not in value:
        return None
    logger = str(value.get("logger", ""))
    message = value["message"] + (f"\n{value['exception']}" if isinstance(value.get("exception"), str) else "")
    pid = value.get("process")
    return {
        "at": str(value.get("time", "")),
        "level": str(value["level"]),
        "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        "logger": logger,
        "cid": str(value.get("cid", "-")),
        "message": message,
        "service": logger[len(SERVICE_LOGGER) :] or None if logger.startswith(SERVICE_LOGGER) else None,
    }


def parse_cursor(cursor: str) -> tuple[int, int] | None:
    """``(inode, offset)`` of a cursor, or ``None`` if it is not one."""
    inode, colon, offset = cursor.partition(":")
    if not colon or not inode.isdigit() or not offset.isdigit() or len(inode) > 20 or len(offset) > 20:
        return None
    return int(inode), int(offset)


def read_log(path: Path, after: str, limit: int, wanted: Filter) -> tuple[str, list[dict[str, Any]]]:
    """The cursor to go on from and the wanted lines: without a cursor (or with one that is not), the last
    ``limit`` in the file's last ``MAX_READ`` bytes; with one, the first ``limit`` written since (the cursor
    then stops after the last line answered, so the next call goes on from there)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return "0:0", []
    with handle:
        status = os.fstat(handle.fileno())
        inode, size = status.st_ino, status.st_size
        cursor = parse_cursor(after) if after else None
        if cursor is None:
            start = max(0, size - MAX_READ)
        elif cursor[0] != inode or cursor[1] > size:
            start = 0  # the file was replaced or cut: all of it is new
        else:
            start = cursor[1]
        handle.seek(start)
        data = handle.read(min(size - start, MAX_READ))
    end = data.rfind(b"\n") + 1  # complete lines only: a line being written is read next time
    data = data[:end]
    if start and cursor is None:
        cut = data.find(b"\n") + 1  # the tail begins mid-line: skip to the next whole one
        data, start = data[cut:], start + cut
    records = parse_log(data, start)
    matching = [(line, offset) for line, offset in records if wanted(line)]
    if cursor is None:
        return f"{inode}:{start + len(data)}", [line for line, _ in matching[-limit:]]
    if len(matching) > limit:
        return f"{inode}:{matching[limit - 1][1]}", [line for line, _ in matching[:limit]]
    return f"{inode}:{start + len(data)}", [line for line, _ in matching]


def log_file(runtime: Runtime) -> Path:
    """Where ``run_server`` writes this process's log (a worker's own, under ``<server dir>/workers/<K>``)."""
    return runtime.settings.process_dir(runtime.server) / "logs" / "server.log"


async def get_logs(runtime: Runtime, request: Request, body: None) -> LogsAnswer:
    query = LogsQuery.model_validate(dict(request.query_params))  # checked by the operation already
    wanted = Filter(query.level, query.service, query.cid, query.q)
    cursor, lines = await anyio.to_thread.run_sync(read_log, log_file(runtime), query.after, query.limit, wanted)
    return LogsAnswer(server=runtime.server.name, cursor=cursor, lines=lines)  # type: ignore[arg-type]  # validated


OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/logs",
        get_logs,
        "This server's log: the last lines, or those written since a cursor, filtered",
        LogsAnswer,
        query=LogsQuery,
    ),
]

__all__ = ["MAX_READ", "OPERATIONS", "Filter", "parse_cursor", "parse_log", "read_log"]
