"""A subscription's page (``/topics/subscription?name=...``): its definition, its queue now (ready, in flight,
dead, the oldest message's age), the messages waiting (peeked, not taken), its dead letters with "Replay" (all or
one) and "Purge". The queue and the lists refresh on ``sse:tick``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page, refused
from .form_values import quoted

PEEK = 20
DEAD = 100
PURGE_STATES = ("ready", "dead")


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


async def queue(request: Request, name: str) -> dict[str, Any]:
    """The subscription, the messages waiting in it and its dead letters (three calls at once)."""
    admin, path = _admin(request), f"/subscriptions/{quoted(name)}"
    try:
        found = await asyncio.gather(
            admin.call("GET", path),
            admin.call("GET", path + "/messages", params={"limit": PEEK}),
            admin.call("GET", path + "/dead", params={"limit": DEAD}),
        )
    except AdminError as exc:
        return {"name": name, "error": exc, "subscription": None, "messages": [], "dead": []}
    subscription, messages, dead = found
    return {
        "name": name,
        "error": None,
        "subscription": subscription,
        "messages": messages["messages"],
        "dead": dead["dead"],
        "peek": PEEK,
    }


async def subscription_page(request: Request) -> Response:
    name = request.query_params.get("name", "")
    view = await queue(request, name)
    status = view["error"].status if view["error"] is not None and view["error"].status == 404 else 200
    may_change = current_user(request).may_change
    return page(request, "screens/pubsub_subscription.html", status, may_change=may_change, **view)


async def live(request: Request) -> Response:
    view = await queue(request, request.query_params.get("name", ""))
    return fragment(request, "screens/pubsub_queue.html", may_change=current_user(request).may_change, **view)


async def replay(request: Request) -> Response:
    """Replay every dead letter, or the one ``?id=`` names."""
    name = request.query_params.get("name", "")
    ident = request.query_params.get("id")
    body: dict[str, Any] = {"ids": [int(ident)]} if ident and ident.isdigit() else {}
    try:
        answer = await _admin(request).call(
            "POST", f"/subscriptions/{quoted(name)}/replay", body, actor=current_user(request).name
        )
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/pubsub_queue_done.html", done="replayed", count=answer["replayed"])
    response.headers["HX-Trigger"] = "queue-changed"
    return response


async def purge(request: Request) -> Response:
    """Purge the waiting messages (``state=ready``), the dead letters (``dead``) or both (no state)."""
    name = request.query_params.get("name", "")
    state = request.query_params.get("state")
    params = {"state": state} if state in PURGE_STATES else None
    try:
        answer = await _admin(request).call(
            "POST", f"/subscriptions/{quoted(name)}/purge", params=params, actor=current_user(request).name
        )
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/pubsub_queue_done.html", done="purged", count=answer["purged"])
    response.headers["HX-Trigger"] = "queue-changed"
    return response


def routes(base: str) -> list[BaseRoute]:
    return [
        Route(base + "/subscription", subscription_page, methods=["GET"]),
        Route(base + "/subscription/live", live),
        Route(base + "/subscription/replay", replay, methods=["POST"]),
        Route(base + "/subscription/purge", purge, methods=["POST"]),
    ]


__all__ = ["routes"]
