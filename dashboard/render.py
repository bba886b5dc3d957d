"""Pages and fragments from Jinja2 templates (autoescaped: whatever the cluster or a user sent is shown as text).

``page`` renders a whole page (it extends ``base.html``: the navigation, the user, the CSRF token for htmx,
the live event stream); ``fragment`` renders a part that htmx swaps in. ``refused`` shows an admin API
refusal as the admin API said it: its message, the field of each problem, and the cid that links to the logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .admin import AdminError

TEMPLATES = Path(__file__).parent / "templates"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


def _context(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    from .screens import SCREENS  # the navigation: every screen registers itself there

    session = getattr(request.state, "session", None)
    app_state = request.app.state
    return {
        "request": request,
        "session": session,
        "user": session.user if session else None,
        "csrf": session.csrf if session else "",
        "screens": SCREENS,
        "cluster_name": app_state.settings.cluster,
        "path": request.url.path,
        **values,
    }


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = environment.get_template(template).render(_context(request, values))
    return HTMLResponse(html, status_code=status)


def fragment(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return page(request, template, status, **values)


def refused(request: Request, error: AdminError, status: int | None = None) -> HTMLResponse:
    """The admin API's refusal as a fragment (role="alert"), with the status the admin API answered.

    htmx does not swap 4xx/5xx answers by default; the base page's ``htmx:beforeSwap`` handler lets these
    through, into the element the request targets."""
    code = status or (error.status if 400 <= error.status < 600 else 502)
    return fragment(request, "error.html", code, error=error)


__all__ = ["environment", "fragment", "page", "refused"]
