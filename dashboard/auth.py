"""Logging in, sessions and CSRF.

- A session is a random id in an HttpOnly, SameSite=Lax cookie (Secure over TLS); what it stands for (user,
  role, CSRF token) stays in this process. Logging in always starts a new session (no fixation); logging out
  ends it here, not only in the browser.
- Every request but the login page and the static files needs a session: a page without one is sent to
  ``/login?next=<page>``, anything else (an htmx fragment, an action, the event stream) answers 401.
- Every request that changes something (not GET or HEAD) needs the session's CSRF token in ``X-CSRF-Token``
  (the base page gives it to htmx through ``hx-headers``); the login form has a token of its own, in a cookie
  and a hidden field. A viewer may look and not change anything: such a request answers 403.
- Failed logins are logged (name and address, never the password) and slowed down: after ``FREE_FAILURES``
  failures for one name or one address within ``WINDOW`` seconds, the next try waits, doubling each time.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .users import User

logger = logging.getLogger(__name__)

SESSION_COOKIE = "splice_session"
LOGIN_CSRF_COOKIE = "splice_login_csrf"
CSRF_HEADER = "x-csrf-token"
IDLE_SECONDS = 8 * 3600
FREE_FAILURES = 3
WINDOW = 15 * 60
MAX_WAIT = 60.0
OPEN_PATHS = ("/login", "/static/", "/healthz")
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class Session:
    id: str
    user: User
    csrf: str
    created: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)


class Sessions:
    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, user: User) -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32))
        self._by_id[session.id] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        now = time.time()
        if session is None or now - session.seen > IDLE_SECONDS:
            self._by_id.pop(sid, None)
            return None
        session.seen = now
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def end_user(self, name: str) -> None:
        """End every session of ``name`` (deleted, or a new password)."""
        for sid in [sid for sid, s in self._by_id.items() if s.user.name == name]:
            del self._by_id[sid]


class Throttle:
    """Failed logins by user name and by client address; how long the next try must wait."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < WINDOW]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait(self, name: str, address: str) -> float:
        """Seconds until ``name`` from ``address`` may try again (0: now)."""
        now = time.time()
        longest = 0.0
        for key in (f"user:{name}", f"address:{address}"):
            failures = self._recent(key, now)
            if len(failures) >= FREE_FAILURES:
                delay = min(MAX_WAIT, 2.0 ** (len(failures) - FREE_FAILURES))
                longest = max(longest, failures[-1] + delay - now)
        return max(0.0, longest)

    def failed(self, name: str, address: str) -> int:
        now = time.time()
        for key in (f"user:{name}", f"address:{address}"):
            self._failures.setdefault(key, []).append(now)
        return len(self._recent(f"user:{name}", now))

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"user:{name}", None)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this dashboard only (no ``//host``, no scheme, no backslash)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or "\n" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def session_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, session.id, max_age=IDLE_SECONDS, httponly=True, samesite="lax", secure=secure, path="/"
    )


class AuthMiddleware:
    """Puts ``request.state.session`` in place, or refuses the request (see the module's docstring)."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        if path == "/login" or any(path.startswith(p) for p in OPEN_PATHS if p.endswith("/")) or path == "/healthz":
            await self.app(scope, receive, send)
            return
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        refusal = _refusal(request, session)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send)


def _refusal(request: Request, session: Session | None) -> Response | None:
    method = request.method
    if session is None:
        wants_page = method in SAFE_METHODS and "hx-request" not in request.headers
        if wants_page and "text/html" in request.headers.get("accept", "text/html") and request.url.path != "/events":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        response = JSONResponse({"error": "not logged in", "login": "/login"}, status_code=401)
        response.headers["HX-Redirect"] = "/login"
        return response
    if method in SAFE_METHODS:
        return None
    token = request.headers.get(CSRF_HEADER, "")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        return PlainTextResponse("refused: this action needs the page's CSRF token (reload the page)", 403)
    if not session.user.may_change and request.url.path != "/logout":
        who = session.user.name
        return PlainTextResponse(f"refused: {who} is a viewer and may look but not change anything", 403)
    return None


def current_user(request: Request) -> User:
    session: Session = request.state.session
    return session.user


Endpoint = Callable[[Request], Awaitable[Response]]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def describe(session: Session) -> dict[str, Any]:
    return {"user": session.user.name, "role": session.user.role, "csrf": session.csrf}


__all__ = [
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "Session",
    "Sessions",
    "Throttle",
    "client_address",
    "current_user",
    "safe_next",
    "session_cookie",
]
