"""A dashboard's settings: ``DIR/dashboard.toml``, written by ``splice create dashboard`` (or the quickstart).

    [dashboard]
    cluster = "quickstart"                      # the cluster it administers (shown, and checked against /cluster)
    host = "127.0.0.1"                          # where it listens; another address is a choice to make on purpose
    port = 17009
    admin = ["http://127.0.0.1:17010"]          # the admin API: the load balancer, or every server's URL
    token_file = "../admin-token"               # the admin token it calls with (relative: to DIR)
    # tls_cert = "cert.pem"                     # both: serve HTTPS (and mark the session cookie Secure)
    # tls_key = "key.pem"

A dashboard directory holds nothing else of the cluster's: ``users.json`` (its users, scrypt hashes, mode 0600),
``logs/dashboard.log`` and ``dashboard.pid``. It can live on a host of its own: it reaches the cluster only
through the admin API.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splice.server.core import ConfigError

CONFIG_FILE = "dashboard.toml"
USERS_FILE = "users.json"
PID_FILE = "dashboard.pid"
LOG_FILE = "logs/dashboard.log"
DEFAULT_PORT = 17009
KEYS = frozenset({"cluster", "host", "port", "admin", "token_file", "tls_cert", "tls_key", "log_level"})


@dataclass(frozen=True)
class DashboardSettings:
    directory: Path
    cluster: str
    host: str
    port: int
    admin: tuple[str, ...]
    """Base URLs of the admin API, tried in order: the load balancer, or the servers."""
    token_file: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "INFO"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def users_file(self) -> Path:
        return self.directory / USERS_FILE

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    def token(self) -> str:
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(str(self.token_file), "not found: the admin token the dashboard calls with") from None


def _need(table: Mapping[str, Any], key: str, kind: type, file: str, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(file, "is required", f"dashboard.{key}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(file, f"must be {kind.__name__}, got {value!r}", f"dashboard.{key}")
    return value


def load_dashboard_settings(directory: Path, environ: Mapping[str, str] | None = None) -> DashboardSettings:
    """Read ``DIR/dashboard.toml``; ``SPLICE_DASHBOARD_HOST``/``_PORT`` override where it listens."""
    directory = directory.resolve()
    path = directory / CONFIG_FILE
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "not found: is this a dashboard directory? ('splice create dashboard DIR')") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, f"not valid TOML: {exc}") from None
    table = data.get("dashboard")
    if not isinstance(table, dict):
        raise ConfigError(file, "needs a [dashboard] table", "dashboard")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(file, f"unknown key '{unknown[0]}' (keys: {', '.join(sorted(KEYS))})", "dashboard")
    env = environ or {}
    port = int(env.get("SPLICE_DASHBOARD_PORT") or _need(table, "port", int, file, DEFAULT_PORT))
    if not 0 < port < 65536:
        raise ConfigError(file, f"must be between 1 and 65535, got {port}", "dashboard.port")
    admin = _need(table, "admin", list, file)
    if not admin or not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in admin):
        raise ConfigError(file, f"must list admin API base URLs (http://host:port), got {admin!r}", "dashboard.admin")
    cert, key = table.get("tls_cert"), table.get("tls_key")
    if (cert is None) != (key is None):
        raise ConfigError(file, "tls_cert and tls_key go together", "dashboard.tls_cert")
    return DashboardSettings(
        directory=directory,
        cluster=_need(table, "cluster", str, file),
        host=env.get("SPLICE_DASHBOARD_HOST") or _need(table, "host", str, file, "127.0.0.1"),
        port=port,
        admin=tuple(url.rstrip("/") for url in admin),
        token_file=(directory / _need(table, "token_file", str, file)).resolve(),
        tls_cert=None if cert is None else (directory / str(cert)).resolve(),
        tls_key=None if key is None else (directory / str(key)).resolve(),
        log_level=env.get("SPLICE_LOG_LEVEL") or _need(table, "log_level", str, file, "INFO"),
    )


def render_dashboard_config(cluster: str, host: str, port: int, admin: list[str], token_file: str) -> str:
    """The text of a new ``dashboard.toml``."""
    return "\n".join(
        [
            "# Splice dashboard configuration; see 'splice create dashboard --help'.",
            "[dashboard]",
            f"cluster = {json.dumps(cluster)}",
            f"host = {json.dumps(host)}  # another address than the loopback exposes the login page",
            f"port = {port}",
            f"admin = [{', '.join(json.dumps(url) for url in admin)}]  # the load balancer, or every server",
            f"token_file = {json.dumps(token_file)}",
            "",
        ]
    )


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PORT",
    "DashboardSettings",
    "load_dashboard_settings",
    "render_dashboard_config",
]
