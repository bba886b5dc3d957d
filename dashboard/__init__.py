"""The dashboard: a web UI for a cluster, a separate process and a client of the admin API only.

``splice create dashboard DIR`` makes one (the quickstart makes one in ``<cluster>/dashboard``);
``python -m splice.dashboard DIR`` runs it (what ``splice start`` does).
"""

from __future__ import annotations

from .admin import AdminApi, AdminError
from .app import create_app
from .config import CONFIG_FILE, DEFAULT_PORT, DashboardSettings, load_dashboard_settings, render_dashboard_config
from .users import ROLES, User, UserError, Users

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
