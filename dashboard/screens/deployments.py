"""The Deployments screen (a stub until its helper builds it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..render import page
from . import screen

SCREEN = screen("deployments")


async def index(request: Request) -> Response:
    return page(request, "screens/stub.html", screen=SCREEN)


def routes() -> list[BaseRoute]:
    return [Route(SCREEN.path, index, name="deployments")]


__all__ = ["SCREEN", "routes"]
