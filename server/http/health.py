"""Health: ``/splice/ping`` (liveness: the event loop and the worker pool answer) and ``/splice/ready`` (readiness:
the ODB answers and this server has caught up with the cluster's deploy sequence). No token: balancers and
Kubernetes probes call them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.context import current_cid
from .responses import json_response

if TYPE_CHECKING:
    from ..runtime import Runtime


def routes(runtime: Runtime) -> list[Route]:
    async def ping(request: Request) -> Response:
        cid = current_cid.get()
        if runtime.draining:
            return json_response({"status": "draining", "server": runtime.server.name, "cid": cid}, cid, 503)
        return json_response({"status": "ok", "server": runtime.server.name, "cid": cid}, cid)

    async def ready(request: Request) -> Response:
        cid = current_cid.get()
        return json_response({"status": "ok", "server": runtime.server.name, "cid": cid}, cid)

    return [
        Route("/splice/ping", ping, methods=["GET", "HEAD"]),
        Route("/splice/ready", ready, methods=["GET", "HEAD"]),
    ]


__all__ = ["routes"]
