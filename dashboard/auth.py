"""Logging in, sessions and CSRF.

- A session is a random id in an HttpOnly, SameSite=Lax cookie (Secure over TLS); what it stands for (user,
  role, CSRF token) stays in this process. Logging in always starts a new session (no fixation); logging out
  ends it here, not only in the browser. A session also ends after ``IDLE_SECONDS`` unused, ``MAX_AGE`` after
  its login, and when users.json no longer has its user with the same password and role; a stream it opened
  (events, a log tail) is cut then too.
- Every request but the login page, ``/healthz`` and the static files needs a session: a page without one is
  sent to ``/login?next=<page>``, anything else (an htmx fragment, an action, the event stream) answers 401.
- Every request that changes something (not GET or HEAD) needs the session's CSRF token in ``X-CSRF-Token``
  (the base page gives it to htmx through ``hx-headers``); the login form has a token of its own, signed, in a
  cookie and a hidden field. A viewer may look and not change anything: such a request answers 403.
- Failed logins are logged and slowed down: see ``throttle.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .users import User, Users

logger = logging.getLogger(__name__)

SESSION_COOKIE = "splice_session"
LOGIN_CSRF_COOKIE = "splice_login_csrf"
DEVICE_COOKIE = "splice_device"
CSRF_HEADER = "x-csrf-token"
IDLE_SECONDS = 3600
"""A session nobody used for this long ends (a tab whose live regions refresh keeps it going: see MAX_AGE)."""
MAX_AGE = 12 * 3600
"""Every session ends this long after its login, used or not."""
MAX_PER_USER = 20
"""Sessions one user may hold at once (browsers, tabs after logins): a new login beyond it ends the oldest."""
USERS_CHECK = 1.0
"""How often (seconds, at most) requests look whether users.json changed: a user deleted, a new password."""
OPEN_PATHS = ("/login", "/healthz")
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class Session:
    id: str
    user: User
    csrf: str
    stamp: str | None
    """The user's entry (password hash and role) the session was opened with: another one ends it."""
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)


class Sessions:
    """The sessions of this process, by id. They end on logout, after ``IDLE_SECONDS`` unused, ``MAX_AGE`` after
    the login, and as soon as their user is deleted or gets another password or role in users.json."""

    def __init__(self, users: Users) -> None:
        self.users = users
        self._by_id: dict[str, Session] = {}
        self._checked = 0.0
        self._generation = users.generation

    def start(self, user: User) -> Session:
        self.sync(force=True)
        mine = sorted((s for s in self._by_id.values() if s.user.name == user.name), key=lambda s: s.created)
        for old in mine[: max(0, len(mine) - MAX_PER_USER + 1)]:
            del self._by_id[old.id]
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), self.users.stamp(user.name))
        self._by_id[session.id] = session
        return session

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``sid`` (``touch``: this use counts as activity), else ``None``."""
        if not sid:
            return None
        self.sync()
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE:
            del self._by_id[sid]
            return None
        if touch:
            session.seen = now
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def end_user(self, name: str) -> None:
        """End every session of ``name``."""
        for sid in [sid for sid, s in self._by_id.items() if s.user.name == name]:
            del self._by_id[sid]

    def sync(self, *, force: bool = False) -> None:
        """Read users.json again if it changed (at most every ``USERS_CHECK`` s): end the sessions whose user is
        gone or has another password or role; drop expired sessions on the way."""
        now = time.monotonic()
        if not force and now - self._checked < USERS_CHECK:
            return
        self._checked = now
        self.users.reload_if_changed()
        if self.users.generation == self._generation:
            return
        self._generation = self.users.generation
        for session in list(self._by_id.values()):
            if self.users.stamp(session.user.name) != session.stamp:
                logger.info("dashboard session of %s ended: the user was deleted or changed", session.user.name)
                del self._by_id[session.id]
            elif now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE:
                del self._by_id[session.id]

    def __len__(self) -> int:
        return len(self._by_id)


class LoginTokens:
    """The login form's CSRF token: a random value and its HMAC under a key of this process, in a cookie and in
    the form's hidden field (double submit). The HMAC means a cookie planted by someone else (a sibling host)
    cannot be paired with a form they made up."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def new(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._mac(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 200 or "." not in token:
            return False
        nonce, mac = token.rsplit(".", 1)
        return hmac.compare_digest(mac.encode(), self._mac(nonce).encode())

    def matches(self, cookie: str | None, form: str | None) -> bool:
        """The form's token is the cookie's and one of ours."""
        if not cookie or not form or not self.valid(cookie):
            return False
        return hmac.compare_digest(cookie.encode(), form.encode())

    def _mac(self, nonce: str) -> str:
        return hmac.new(self._key, f"login:{nonce}".encode(), hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this dashboard only (no ``//host``, no scheme, no backslash, no
    control character: browsers read ``/\\host`` and ``/\t/host`` as another host)."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def session_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, session.id, max_age=MAX_AGE, httponly=True, samesite="lax", secure=secure, path="/"
    )


class SessionEnded(Exception):
    """Raised into a response that streams (the event stream, a log tail) once its session has ended."""


class AuthMiddleware:
    """Puts ``request.state.session`` in place, or refuses the request (see the module's docstring).

    A streaming answer is cut when its session ends (logout, a deleted user, a new password): each chunk it
    writes looks whether the session is still there."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sid = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(sid)
        refusal = _refusal(request, session)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert session is not None
        assert sid is not None
        scope.setdefault("state", {})["session"] = session
        cut = False

        async def send_while_alive(message: Message) -> None:
            nonlocal cut
            streaming = message["type"] == "http.response.body" and message.get("more_body")
            if streaming and self.sessions.get(sid, touch=False) is None:
                if not cut:
                    cut = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise SessionEnded
            await send(message)

        try:
            await self.app(scope, receive, send_while_alive)
        except SessionEnded:
            logger.info("a stream of %s (%s) ended with its session", session.user.name, path)
        except BaseExceptionGroup as group:
            # a response streaming from a task group (anyio) raises it wrapped
            rest = group.subgroup(lambda e: not isinstance(e, SessionEnded))
            if rest is not None:
                raise rest from None


def _refusal(request: Request, session: Session | None) -> Response | None:
    method = request.method
    if session is None:
        wants_page = method in SAFE_METHODS and "hx-request" not in request.headers
        if wants_page and "text/html" in request.headers.get("accept", "text/html") and request.url.path != "/events":
            return RedirectResponse(f"/login?next={quote(_here(request), safe='')}", status_code=303)
        response = JSONResponse({"error": "not logged in", "login": "/login"}, status_code=401)
        # htmx follows HX-Redirect: back to the page the user was on, once logged in again
        current = urlsplit(request.headers.get("hx-current-url", ""))
        back = safe_next(current.path + (f"?{current.query}" if current.query else "")) if current.path else "/"
        response.headers["HX-Redirect"] = f"/login?next={quote(back, safe='')}"
        return response
    if method in SAFE_METHODS:
        return None
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        # defence in depth: the CSRF token below already refuses what another site's page sends
        return PlainTextResponse("refused: a change must come from a page of this dashboard", 403)
    token = request.headers.get(CSRF_HEADER, "")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        return PlainTextResponse("refused: this action needs the page's CSRF token (reload the page)", 403)
    if not session.user.may_change and request.url.path != "/logout":
        who = session.user.name
        return PlainTextResponse(f"refused: {who} is a viewer and may look but not change anything", 403)
    return None


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def current_user(request: Request) -> User:
    session: Session = request.state.session
    return session.user


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


__all__ = [
    "CSRF_HEADER",
    "DEVICE_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "LoginTokens",
    "Session",
    "SessionEnded",
    "Sessions",
    "client_address",
    "current_user",
    "safe_next",
    "session_cookie",
]
