"""The dashboard: a web UI for a cluster, a separate process and a client of the admin API only.

``splice create dashboard DIR`` makes one (the quickstart makes one in ``<cluster>/dashboard``);
``python -m splice.dashboard DIR`` runs it (what ``splice start`` does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from splice.server.loop import defer_httpx_cli

defer_httpx_cli()  # before anything here imports httpx: its command line is ~4.5 MiB the dashboard never runs

if TYPE_CHECKING:
    from .admin import AdminApi, AdminError
    from .app import create_app
    from .config import CONFIG_FILE, DEFAULT_PORT, DashboardSettings, load_dashboard_settings, render_dashboard_config
    from .users import ROLES, User, UserError, Users

# Imported on first use: ``splice start`` needs only the settings, not the app, the admin client and httpx (~1 s of
# CPU when the package imported them all).
_WHERE = {
    "AdminApi": "admin",
    "AdminError": "admin",
    "create_app": "app",
    "CONFIG_FILE": "config",
    "DEFAULT_PORT": "config",
    "DashboardSettings": "config",
    "load_dashboard_settings": "config",
    "render_dashboard_config": "config",
    "ROLES": "users",
    "User": "users",
    "UserError": "users",
    "Users": "users",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PORT",
    "ROLES",
    "AdminApi",
    "AdminError",
    "DashboardSettings",
    "User",
    "UserError",
    "Users",
    "create_app",
    "load_dashboard_settings",
    "render_dashboard_config",
]
