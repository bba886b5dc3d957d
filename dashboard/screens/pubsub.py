"""The Pub/sub screen (``/topics``): topics and subscriptions with their queues (live), forms to create, change and
delete them, and one to publish a test message. A subscription's own page (peek, dead letters, replay, purge) is
``pubsub_queue``.

Forms send what the user typed (numbers as numbers, empty fields left out); the admin API judges it, and its
refusal is shown field by field. A change answers with ``HX-Trigger: pubsub-changed`` so the tables refresh at
once, besides on ``sse:changed`` and ``sse:tick``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page, refused
from . import pubsub_queue, screen
from .form_values import fields, parse_json, quoted

SCREEN = screen("pubsub")
ROWS = 200
"""Rows of each table at most (a search narrows them)."""
CHANGED = {"HX-Trigger": "pubsub-changed"}
TOPIC_NUMBERS = ("max_payload", "max_depth", "expiry", "idempotency_window")
SUBSCRIPTION_NUMBERS = ("concurrency", "delivery_limit", "backoff", "max_backoff", "lease")


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


async def tables(request: Request) -> dict[str, Any]:
    """Topics and subscriptions (those whose name, topic or service holds ``q``), at most ``ROWS`` each."""
    query = request.query_params.get("q", "").strip().lower()
    admin = _admin(request)
    try:
        topics = (await admin.call("GET", "/topics"))["topics"]
        subscriptions = (await admin.call("GET", "/subscriptions"))["subscriptions"]
    except AdminError as exc:
        return {"error": exc, "topics": [], "subscriptions": [], "query": query, "counts": (0, 0), "may_change": False}
    if query:
        topics = [t for t in topics if query in t["name"].lower()]
        subscriptions = [
            s for s in subscriptions if any(query in str(s.get(k) or "").lower() for k in ("name", "topic", "service"))
        ]
    topics.sort(key=lambda t: t["name"])
    subscriptions.sort(key=lambda s: s["name"])
    return {
        "error": None,
        "topics": topics[:ROWS],
        "subscriptions": subscriptions[:ROWS],
        "counts": (len(topics), len(subscriptions)),
        "query": query,
        "may_change": current_user(request).may_change,
    }


async def index(request: Request) -> Response:
    view = await tables(request)
    return page(
        request,
        "screens/pubsub.html",
        screen=SCREEN,
        topic=None,
        subscription=None,
        **view,
    )


async def rows(request: Request) -> Response:
    return fragment(request, "screens/pubsub_tables.html", **await tables(request))


async def _one(request: Request, kind: str) -> dict[str, Any] | None:
    name = request.query_params.get("name", "")
    if not name:
        return None
    answer: dict[str, Any] = await _admin(request).call("GET", f"/{kind}/{quoted(name)}")
    return answer


async def topic_form(request: Request) -> Response:
    """The topic form, empty or filled with a topic to change (``?name=``)."""
    try:
        topic = await _one(request, "topics")
    except AdminError as exc:
        return refused(request, exc)
    return fragment(request, "screens/pubsub_topic_form.html", topic=topic, may_change=current_user(request).may_change)


async def subscription_form(request: Request) -> Response:
    try:
        subscription = await _one(request, "subscriptions")
    except AdminError as exc:
        return refused(request, exc)
    return fragment(
        request,
        "screens/pubsub_subscription_form.html",
        subscription=subscription,
        may_change=current_user(request).may_change,
    )


async def save_topic(request: Request) -> Response:
    """Create (POST) or change (PUT ``?name=``) a topic from the form."""
    form = await request.form()
    body = fields(form, texts=("name",), numbers=TOPIC_NUMBERS, flags=("persistent",))
    return await _save(request, "topics", body, "topic")


async def save_subscription(request: Request) -> Response:
    form = await request.form()
    texts = ("name", "topic", "service", "security")
    body = fields(form, texts=texts, numbers=SUBSCRIPTION_NUMBERS, flags=("ordered",))
    return await _save(request, "subscriptions", body, "subscription")


async def _save(request: Request, kind: str, body: dict[str, Any], what: str) -> Response:
    actor = current_user(request).name
    name = request.query_params.get("name")
    try:
        if request.method == "PUT" and name:
            answer = await _admin(request).call("PUT", f"/{kind}/{quoted(name)}", body, actor=actor)
        else:
            answer = await _admin(request).call("POST", f"/{kind}", body, actor=actor)
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/pubsub_saved.html", what=what, answer=answer, spec=answer[what])
    response.headers.update(CHANGED)
    return response


async def delete(request: Request) -> Response:
    """``DELETE /topics/topic?name=`` or ``/topics/subscription?name=``."""
    kind = "topics" if request.url.path.endswith("/topic") else "subscriptions"
    name = request.query_params.get("name", "")
    actor = current_user(request).name
    try:
        answer = await _admin(request).call("DELETE", f"/{kind}/{quoted(name)}", actor=actor)
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/pubsub_deleted.html", kind=kind[:-1], answer=answer)
    response.headers.update(CHANGED)
    return response


async def publish(request: Request) -> Response:
    """Publish the form's JSON payload to its topic; a payload that is not JSON is shown where, and not sent."""
    form = await request.form()
    topic = str(form.get("topic", "")).strip()
    data, mistake = parse_json(str(form.get("payload", "")), "payload")
    if mistake is not None:
        return fragment(request, "screens/pubsub_mistake.html", 400, mistake=mistake)
    body = {"data": data, **fields(form, texts=("key",), numbers=("priority", "expiry"))}
    try:
        answer = await _admin(request).call(
            "POST", f"/topics/{quoted(topic)}/publish", body, actor=current_user(request).name
        )
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/pubsub_published.html", answer=answer)
    response.headers.update(CHANGED)
    return response


def routes() -> list[BaseRoute]:
    base = SCREEN.path
    return [
        Route(base, index, name="pubsub"),
        Route(base + "/rows", rows),
        Route(base + "/topic-form", topic_form),
        Route(base + "/subscription-form", subscription_form),
        Route(base + "/topics", save_topic, methods=["POST"]),
        Route(base + "/topic", save_topic, methods=["PUT"]),
        Route(base + "/topic", delete, methods=["DELETE"]),
        Route(base + "/subscriptions", save_subscription, methods=["POST"]),
        Route(base + "/subscription", save_subscription, methods=["PUT"]),
        Route(base + "/subscription", delete, methods=["DELETE"]),
        Route(base + "/publish", publish, methods=["POST"]),
        *pubsub_queue.routes(base),
    ]


__all__ = ["SCREEN", "routes"]
