"""The Metrics screen (a stub until its helper builds it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..render import page
from . import screen

SCREEN = screen("metrics")


async def index(request: Request) -> Response:
    return page(request, "screens/stub.html", screen=SCREEN)


def routes() -> list[BaseRoute]:
    return [Route(SCREEN.path, index, name="metrics")]


__all__ = ["SCREEN", "routes"]
