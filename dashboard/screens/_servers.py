"""Per-server calls for the Cluster, Services and Logs screens: one ``GET /cluster``, then every server at once.

``AdminApi.each_server`` asks ``/cluster`` itself and takes no query parameters; these screens already hold the
``/cluster`` answer (and need parameters: ``/logs?after=``, ``/metrics?service=``), so they ask the servers named
there, all at once, and get one ``ServerAnswer`` per server in the cluster's order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..admin import AdminApi, AdminError, ServerAnswer


async def cluster(admin: AdminApi) -> tuple[dict[str, Any] | None, str | None]:
    """``GET /cluster`` (its answer, ``None``) or why no admin API answered (``None``, the message)."""
    try:
        return await admin.call("GET", "/cluster"), None
    except AdminError as exc:
        return None, exc.message


def live(answer: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [s for s in (answer or {}).get("servers", []) if s.get("live")]


async def one(
    admin: AdminApi, server: Mapping[str, Any], method: str, path: str, params: Mapping[str, Any] | None = None
) -> ServerAnswer:
    began = time.perf_counter()
    answer = ServerAnswer(str(server["name"]), str(server["url"]))
    try:
        answer.value = await admin.call(method, path, params=params, base=answer.url)
    except AdminError as exc:
        answer.error = exc.message if exc.status != 404 else f"not available on this server ({exc.message})"
    answer.ms = (time.perf_counter() - began) * 1000
    return answer


async def each(
    admin: AdminApi,
    servers: Iterable[Mapping[str, Any]],
    method: str,
    path: str,
    params: Mapping[str, Any] | None = None,
) -> list[ServerAnswer]:
    """``method path`` on each of ``servers`` at once (``base=`` its URL), in their order."""
    return list(await asyncio.gather(*(one(admin, s, method, path, params) for s in servers)))


__all__ = ["cluster", "each", "live", "one"]
