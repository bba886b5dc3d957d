"""The dashboard's one way into the cluster: the admin API, over HTTP, with the cluster's admin token.

Every call carries ``X-Splice-Actor: dashboard:<user>`` so that the servers' logs and the deployment history
say who did it. ``call`` goes to the first admin URL that answers (the load balancer, or the servers in
turn); ``each_server`` asks every live server at once, for what is kept per server (logs, metrics, caches,
debug attach points).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

ACTOR_HEADER = "X-Splice-Actor"


class AdminError(Exception):
    """The admin API refused a call (its status and message, problems per field), or no server answered (0)."""

    def __init__(self, status: int, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = dict(body or {})

    @property
    def problems(self) -> list[dict[str, str]]:
        """``[{"field": ..., "message": ...}]`` when the admin API named bad fields."""
        found = self.body.get("error", {}).get("problems") or []
        return [p for p in found if isinstance(p, dict)]

    @property
    def cid(self) -> str | None:
        cid = self.body.get("error", {}).get("cid")
        return str(cid) if cid else None


@dataclass
class ServerAnswer:
    """One server's answer to a per-server call: ``value`` or ``error``."""

    server: str
    url: str
    value: Any = None
    error: str | None = None
    ms: float = 0.0


@dataclass
class AdminApi:
    urls: tuple[str, ...]
    token: str
    timeout: float = 30.0
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self.client = httpx.AsyncClient(timeout=self.timeout, limits=limits)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _headers(self, actor: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if actor:
            headers[ACTOR_HEADER] = f"dashboard:{actor}"
        return headers

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        actor: str | None = None,
        params: Mapping[str, Any] | None = None,
        base: str | None = None,
    ) -> Any:
        """The JSON answer of ``method /splice/admin<path>``; raises ``AdminError`` with the server's message.

        ``base`` sends it to one server; else the admin URLs are tried in order until one is reached."""
        last: Exception | None = None
        for url in (base,) if base else self.urls:
            try:
                response = await self.client.request(
                    method,
                    f"{url}/splice/admin{path}",
                    json=body,
                    params={k: v for k, v in (params or {}).items() if v not in (None, "")},
                    headers=self._headers(actor),
                )
            except httpx.HTTPError as exc:
                last = exc
                continue
            return _answer(response)
        raise AdminError(0, f"no admin API answers ({', '.join((base,) if base else self.urls)}): {last}")

    async def servers(self) -> list[dict[str, Any]]:
        """The cluster's servers as ``GET /cluster`` lists them (name, url, live, last_sequence...)."""
        answer = await self.call("GET", "/cluster")
        return list(answer["servers"])

    async def each_server(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        actor: str | None = None,
        params: Mapping[str, Any] | None = None,
        live_only: bool = True,
    ) -> list[ServerAnswer]:
        """Ask every (live) server at once; one answer per server, in the cluster's order."""
        servers = [s for s in await self.servers() if s.get("live") or not live_only]

        async def one(server: dict[str, Any]) -> ServerAnswer:
            began = time.perf_counter()
            answer = ServerAnswer(server["name"], server["url"])
            try:
                answer.value = await self.call(method, path, body, actor=actor, params=params, base=server["url"])
            except AdminError as exc:
                answer.error = exc.message
            answer.ms = (time.perf_counter() - began) * 1000
            return answer

        return list(await asyncio.gather(*(one(s) for s in servers)))


def _answer(response: httpx.Response) -> Any:
    try:
        value = response.json() if response.content else {}
    except ValueError:
        value = {"error": {"message": response.text[:500]}}
    if response.status_code >= 400:
        error = value.get("error", {}) if isinstance(value, dict) else {}
        message = error.get("message") or f"HTTP {response.status_code}"
        raise AdminError(response.status_code, str(message), value if isinstance(value, dict) else {})
    return value


__all__ = ["ACTOR_HEADER", "AdminApi", "AdminError", "ServerAnswer"]
