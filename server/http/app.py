"""Assembles the server's ASGI application: ping, the admin API, and the REST, JSON-RPC and WebSocket channels."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core import tracing
from ..core.context import actor_from_header, current_actor, current_cid, new_cid
from ..logs import ACCESS
from . import admin_metrics, audit, health
from .admin import authorized, routes
from .channels import ChannelApp
from .jsonrpc import JsonRpcApp
from .pubsub import routes as pubsub_routes
from .pubsub_ws import PATH as PUBSUB_WS
from .pubsub_ws import PubSubSocketApp
from .responses import CID_HEADER, error_body
from .user_openapi import route as user_openapi
from .websocket import WebSocketApp

if TYPE_CHECKING:
    from ..runtime import Runtime

access = logging.getLogger(ACCESS)
logger = logging.getLogger(__name__)
actions = logging.getLogger("splice.admin")
"""One line per admin call that may change something: who, what, and how it ended."""
_CID = CID_HEADER.encode()
_READING = frozenset({"GET", "HEAD", "OPTIONS"})
_MACHINERY = frozenset(
    {"/splice/admin/cluster/sync", "/splice/admin/cluster/events", "/splice/admin/scheduler/dispatch"}
)
"""Calls servers make to each other (a notice of a change, cluster events, the scheduler's batches): not someone's
action."""
_UNAUTHORIZED = "the admin API needs 'Authorization: Bearer <token>'; the token is in the cluster's admin-token file"


async def _not_found(request: Request, exc: Exception) -> Response:
    """404 and 405 (with ``Allow``) as JSON with the cid."""
    cid = current_cid.get()
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    headers = {CID_HEADER: cid}
    if status == 405:
        allow = (exc.headers or {}).get("Allow", "") if isinstance(exc, HTTPException) else ""
        headers["Allow"] = allow
        text = f"{request.method} is not allowed on {request.url.path}; allowed: {allow or 'none'}"
        body = error_body(status, "method_not_allowed", text, cid, allowed=[m.strip() for m in allow.split(",")])
    else:
        body = error_body(status, "not_found", f"no such endpoint: {request.method} {request.url.path}", cid)
    return Response(body, status, media_type="application/json", headers=headers)


async def _failed(request: Request, exc: Exception) -> Response:
    """What no handler caught (a driver's error, a bug): JSON with the cid, the traceback in the log."""
    cid = current_cid.get()
    logger.error("%s %s failed inside Splice", request.method, request.url.path, exc_info=exc)
    text = "an unexpected error inside Splice; the server's log has the traceback under this cid"
    body = error_body(500, "internal_error", text, cid)
    return Response(body, 500, media_type="application/json", headers={CID_HEADER: cid})


def build_app(runtime: Runtime) -> ASGIApp:
    handlers = {404: _not_found, 405: _not_found, Exception: _failed}
    splice = Starlette(
        routes=[
            *health.routes(runtime),
            user_openapi(runtime),
            *routes(runtime),
            *pubsub_routes(runtime),
            *admin_metrics.public_routes(runtime),
        ],
        exception_handlers=handlers,
    )
    channels = ChannelApp(runtime)
    jsonrpc = JsonRpcApp(runtime)
    websockets = WebSocketApp(runtime)
    pubsub_sockets = PubSubSocketApp(runtime)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        trace = tracing.enter(scope.get("headers", []))
        try:
            await outer(scope, receive, send)
        finally:
            tracing.leave(trace)

    async def serving(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return await _lifespan(receive, send)
            if scope["type"] == "websocket":
                if scope["path"] == PUBSUB_WS:
                    return await pubsub_sockets(scope, receive, send)
                return await websockets(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/splice/"):
            rpc = jsonrpc.match(path)
            if rpc is not None:
                return await jsonrpc.serve(rpc, scope, receive, send)
            return await channels(scope, receive, send)
        cid = new_cid()
        token = current_cid.set(cid)
        try:
            if path.startswith("/splice/admin") and not authorized(runtime, _header(scope, b"authorization"), path):
                body = error_body(401, "unauthorized", _UNAUTHORIZED, cid)
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
                headers.append((CID_HEADER.encode(), cid.encode()))
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                return await send({"type": "http.response.body", "body": body})
            if path.startswith("/splice/admin"):
                return await _admin(runtime, splice, scope, receive, send)
            await splice(scope, receive, send)
        finally:
            current_cid.reset(token)

    outer = _access_logged(serving) if runtime.settings.logs.access else serving
    return app


def _access_logged(app: ASGIApp) -> ASGIApp:
    """``app``, writing one access line per HTTP request (``_logged``)."""

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        await _logged(app, scope, receive, send)

    return logged


async def _logged(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve, then write the access line: method, path (never the query string: API keys travel there), status,
    duration, body bytes sent, the cid the answer carried and the client's address."""
    started = time.perf_counter()
    answer: dict[str, Any] = {"status": 500, "bytes": 0, "cid": "-"}  # what a failure before any answer means

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            for key, value in message.get("headers", []):
                if key == _CID:
                    answer["cid"] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            answer["bytes"] += len(message.get("body", b""))
        await send(message)

    try:
        await app(scope, receive, sending)
    finally:
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "status": answer["status"],
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "bytes": answer["bytes"],
            "client": f"{client[0]}:{client[1]}" if client else "-",
            "cid": answer["cid"],
        }
        access.info(
            "%s %s %s %.1f ms %s B %s",
            *(fields[k] for k in ("method", "path", "status", "duration_ms", "bytes", "client")),
            extra=fields,
        )


async def _admin(runtime: Runtime, splice: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """An authorized admin call: who makes it (``X-Splice-Actor``), and a log line if it may change something."""
    actor = _actor(scope)
    token = current_actor.set(actor) if actor is not None else None
    try:
        method: str = scope["method"]
        if method in _READING or scope["path"] in _MACHINERY:
            return await splice(scope, receive, send)
        status = [500]  # what the client sees if the handler fails before answering

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await splice(scope, receive, sending)
        finally:
            actions.info("admin action: %s %s %s -> %s", current_actor.get(), method, scope["path"], status[0])
            await audit.record(runtime, current_actor.get(), method, scope["path"], status[0])
    finally:
        if token is not None:
            current_actor.reset(token)


def _actor(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-splice-actor":
            try:
                return actor_from_header(value.decode("utf-8"))
            except UnicodeDecodeError:
                return None
    return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
