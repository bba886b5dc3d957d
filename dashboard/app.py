"""The dashboard's Starlette application: login and logout, the event stream, the static files, the screens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .admin import AdminApi
from .auth import (
    DEVICE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AuthMiddleware,
    LoginTokens,
    Sessions,
    client_address,
    current_user,
    safe_next,
    session_cookie,
)
from .config import DashboardSettings
from .headers import SecurityHeaders
from .live import Hub
from .render import page
from .screens import all_routes
from .throttle import Throttle
from .users import MAX_PASSWORD, Users

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_LOGIN_FORM = 4096
"""A login form is a name, a password and a token: anything bigger is refused before it is parsed."""
FAILED_LOGIN_PAUSE = 0.5
"""Every failed login answers no sooner than this, on top of scrypt's own cost."""
MAX_NAME_LOGGED = 64
"""A user name is at most 64 characters: longer ones are cut in the log."""
DEVICE_DAYS = 30
"""How long a browser that logged in stays exempt from the per-name login throttle (see throttle.py)."""


async def login_page(request: Request) -> Response:
    tokens: LoginTokens = request.app.state.login_tokens
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not tokens.valid(token):  # one of ours, or a new one (never a value someone else chose)
        token = tokens.new()
    next_path = safe_next(request.query_params.get("next"))
    response = page(request, "login.html", next=next_path, login_csrf=token, message=None)
    _login_cookie(request, response, str(token))
    return response


def _login_cookie(request: Request, response: Response, token: str) -> None:
    secure = request.app.state.settings.tls
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/login")


async def _small_form(request: Request) -> FormData | None:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_LOGIN_FORM:
        return None
    return await request.form(max_files=0, max_fields=8, max_part_size=MAX_LOGIN_FORM)


async def login(request: Request) -> Response:
    state = request.app.state
    form = await _small_form(request)
    if form is None:
        return PlainTextResponse(f"refused: a login form is at most {MAX_LOGIN_FORM} bytes", 413)
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "")))
    address = client_address(request)
    shown = name[:MAX_NAME_LOGGED]  # logged with %r: no line breaks or escapes from the form reach the log
    tokens: LoginTokens = state.login_tokens
    if not tokens.matches(request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
        logger.warning("dashboard login for %r from %s refused: the form's token did not match", shown, address)
        return _login_again(request, next_path, "The login form expired: please try again.", 403)
    throttle: Throttle = state.throttle
    wait = throttle.wait(name, address, request.cookies.get(DEVICE_COOKIE))
    if wait > 0:
        logger.warning(
            "dashboard login for %r from %s refused: too many failed logins, %.0f s to wait", shown, address, wait
        )
        response = _login_again(request, next_path, f"Too many failed logins: try again in {wait:.0f} s.", 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    attempt = throttle.attempt(name, address)  # counted before the check: tries sent at once are slowed too
    users: Users = state.users
    users.reload_if_changed()
    user = await anyio.to_thread.run_sync(users.verify, name, password[: MAX_PASSWORD + 1])
    if user is None:
        failures = throttle.failures(attempt)
        logger.warning("dashboard login failed for %r from %s (%d failures in a row)", shown, address, failures)
        await asyncio.sleep(FAILED_LOGIN_PAUSE)
        return _login_again(request, next_path, "Wrong user name or password.", 401)
    throttle.succeeded(attempt)
    sessions: Sessions = state.sessions
    sessions.end(request.cookies.get(SESSION_COOKIE))  # a session id set before logging in is never kept
    session = sessions.start(user)
    logger.info("dashboard user %s (%s) logged in from %s", user.name, user.role, address)
    secure = state.settings.tls
    response = RedirectResponse(next_path, status_code=303)
    session_cookie(response, session, secure)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=secure, httponly=True, samesite="strict")
    response.set_cookie(
        DEVICE_COOKIE,
        throttle.device_token(user.name),
        max_age=DEVICE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/login",
    )
    return response


def _login_again(request: Request, next_path: str, message: str, status: int) -> Response:
    token = request.app.state.login_tokens.new()
    response = page(request, "login.html", status, next=next_path, login_csrf=token, message=message)
    _login_cookie(request, response, token)
    return response


async def logout(request: Request) -> Response:
    request.app.state.sessions.end(request.cookies.get(SESSION_COOKIE))
    logger.info("dashboard user %s logged out", current_user(request).name)
    if "hx-request" in request.headers:
        # htmx: a 303 would be followed inside the XHR (the login page swapped into the header); HX-Redirect is not
        response: Response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    else:
        response = RedirectResponse("/login", status_code=303)
    secure = request.app.state.settings.tls
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    return response


async def events(request: Request) -> Response:
    if request.method == "HEAD":  # the headers only: no stream held open for nobody to read
        return Response(media_type="text/event-stream")
    hub: Hub = request.app.state.hub
    return await hub.stream(request)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: DashboardSettings, *, admin: AdminApi | None = None) -> Starlette:
    """The dashboard of ``settings``; ``admin`` replaces the admin API client (a test's, with other URLs)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = admin or AdminApi(settings.admin, settings.token())
        app.state.admin = client
        app.state.hub = Hub(client)
        app.state.hub.start()
        try:
            yield
        finally:
            await app.state.hub.stop()
            await client.aclose()

    routes: list[BaseRoute] = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *all_routes(),
    ]
    users = Users(settings.users_file)
    sessions = Sessions(users)
    key = secrets.token_bytes(32)  # signs login tokens and device cookies; a restart makes new ones
    app = Starlette(
        routes=routes,
        # outermost first: every answer gets the headers, refusals of the auth middleware included
        middleware=[Middleware(SecurityHeaders), Middleware(AuthMiddleware, sessions=sessions)],
        lifespan=lifespan,
        exception_handlers={404: _not_found},
    )
    app.state.settings = settings
    app.state.users = users
    app.state.sessions = sessions
    app.state.throttle = Throttle(key)
    app.state.login_tokens = LoginTokens(key)
    return app


async def _not_found(request: Request, exc: Any) -> Response:
    # No part of the request is echoed back (reflected input): the page names no path.
    return page(request, "not_found.html", 404)


__all__ = ["create_app"]
