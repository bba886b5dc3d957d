"""Cluster settings: read once at start from ``DIR/cluster.toml`` plus ``SPLICE_*`` variables, then passed down.

``cluster.toml`` looks like this (``splice quickstart create`` writes it)::

    [cluster]
    name = "quickstart"
    odb = "sqlite+aiosqlite:///odb.sqlite"      # relative SQLite paths are relative to DIR

    [deploy]
    max_module_bytes = 1048576
    import_timeout = 5.0                         # seconds an import may take before it is refused

    [[servers]]
    name = "server1"
    host = "127.0.0.1"
    port = 17010

Variables override the file: ``SPLICE_ODB``, ``SPLICE_IMPORT_TIMEOUT``, ``SPLICE_MAX_MODULE_BYTES``,
``SPLICE_LOG_LEVEL``, ``SPLICE_LOG_FORMAT``, ``SPLICE_ACCESS_LOG``.
A key no section knows is refused with its line (a typo would leave a default in force).

Without ``cluster.toml``, a directory holding nothing yet (a container's work volume) is configured from the
environment alone when ``SPLICE_ODB`` is set: see ``splice.server.environment`` (what Kubernetes needs).
"""

from __future__ import annotations

import difflib
import secrets
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .core.errors import ConfigError
from .settings import (
    CONFIG_FILE,
    LOG_FORMATS,
    LOOPBACK,
    MAX_WORKERS,
    TOKEN_FILE,
    CallSettings,
    DebugSettings,
    LoadBalancerSettings,
    LogSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
    member_name,
    resolve_odb_url,
    split_member,
    workers_of,
)

KNOWN_KEYS: Mapping[str, frozenset[str]] = {
    "": frozenset(
        {
            "cluster",
            "deploy",
            "servers",
            "load_balancer",
            "scheduler",
            "schedulers",
            "debug",
            "pickup",
            "openapi",
            "dashboard",
            "calls",
            "logs",
        }
    ),
    "cluster": frozenset({"name", "odb", "log_level", "redis", "sync_interval"}),
    "deploy": frozenset({"max_module_bytes", "import_timeout", "cluster_timeout"}),
    "servers": frozenset({"name", "host", "port", "workers"}),
    "load_balancer": frozenset({"host", "port"}),
    "scheduler": frozenset({"poll_interval", "lease_ttl", "misfire_grace", "history_days"}),
    "schedulers": frozenset({"name"}),
    "debug": frozenset({"enabled", "host", "port", "allow_remote"}),
    "pickup": frozenset({"dirs"}),
    "openapi": frozenset({"public"}),
    "dashboard": frozenset({"dir"}),
    "calls": frozenset({"timeout", "threads", "queue"}),
    "logs": frozenset({"format", "access"}),
}
"""The keys of each section of ``cluster.toml`` (``""``: the top level), as the readers below take them."""


def _get(table: Mapping[str, Any], key: str, kind: type, file: str, where: str, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(file, "is required", f"{where}.{key}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(file, f"must be {kind.__name__}, got {value!r}", f"{where}.{key}")
    return value


def _table(data: Mapping[str, Any], key: str, file: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(file, f"must be a table ([{key}]), got {value!r}", key)
    return value


def _servers(data: Mapping[str, Any], file: str) -> tuple[ServerSettings, ...]:
    raw_servers = data.get("servers", [])
    if not isinstance(raw_servers, list):
        raise ConfigError(file, f"must be an array of tables ([[servers]]), got {raw_servers!r}", "servers")
    servers: list[ServerSettings] = []
    for index, raw in enumerate(raw_servers):
        where = f"servers[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(file, f"must be a table, got {raw!r}", where)
        port = _get(raw, "port", int, file, where)
        if not 0 < port < 65536:
            raise ConfigError(file, f"must be between 1 and 65535, got {port}", f"{where}.port")
        name = _get(raw, "name", str, file, where)
        if any(s.name == name for s in servers):
            # Each server has its own directory and is looked up by name: two with one name would share both.
            raise ConfigError(file, f"server name '{name}' is used twice", f"{where}.name")
        if split_member(name)[1] is not None:
            why = f"'{name}' ends like a worker's name (<server>.w<N>): choose another"
            raise ConfigError(file, why, f"{where}.name")
        host = _get(raw, "host", str, file, where, "127.0.0.1")
        servers.append(ServerSettings(name, host, port, index, workers=workers_of(raw.get("workers", 1), file, where)))
    if not servers:
        raise ConfigError(file, "a cluster needs at least one [[servers]] entry", "servers")
    return tuple(servers)


def _schedulers(data: Mapping[str, Any], file: str) -> SchedulerSettings:
    table = _table(data, "scheduler", file)
    raw = data.get("schedulers", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(file, f"must be an array of tables ([[schedulers]]), got {raw!r}", "schedulers")
    names: list[str] = []
    for index, item in enumerate(raw):
        name = _get(item, "name", str, file, f"schedulers[{index}]")
        if name in names:
            raise ConfigError(file, f"scheduler name '{name}' is used twice", f"schedulers[{index}].name")
        names.append(name)
    values = {}
    for key in ("poll_interval", "lease_ttl", "misfire_grace", "history_days"):
        value = _get(table, key, float, file, "scheduler", getattr(SchedulerSettings, key))
        if not value > 0:
            raise ConfigError(file, f"must be more than 0, got {value}", f"scheduler.{key}")
        values[key] = value
    return SchedulerSettings(tuple(names), **values)


def _debug(data: Mapping[str, Any], file: str, servers: int) -> DebugSettings:
    table = _table(data, "debug", file)
    default = DebugSettings()
    debug = DebugSettings(
        enabled=_get(table, "enabled", bool, file, "debug", default.enabled),
        host=_get(table, "host", str, file, "debug", default.host),
        port=_get(table, "port", int, file, "debug", default.port),
        allow_remote=_get(table, "allow_remote", bool, file, "debug", default.allow_remote),
    )
    if not 0 < debug.port <= 65536 - servers:
        raise ConfigError(
            file, f"must leave a port for each of {servers} servers below 65536, got {debug.port}", "debug.port"
        )
    if debug.host not in LOOPBACK and not debug.allow_remote:
        raise ConfigError(
            file,
            f"{debug.host!r} is not the loopback: anyone who can reach an attach point can run code in the server; "
            "set allow_remote = true to mean it",
            "debug.host",
        )
    return debug


def _sections(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str, Mapping[str, Any]]]:
    """``(path, section, table)`` of the top level and of each table or array entry in a known section."""
    yield (), "", data
    for section in KNOWN_KEYS[""]:
        value = data.get(section)
        if isinstance(value, dict):
            yield (section,), section, value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield (section, index), section, item


def _check_keys(data: Mapping[str, Any], text: str, file: str) -> None:
    """Refuse a key no reader takes, at its line; wrong types are left to the readers."""
    for path, section, table in _sections(data):
        known = KNOWN_KEYS[section]
        for key in table:
            if key in known:
                continue
            where = "at the top level" if not path else f"in [[{section}]]" if len(path) == 2 else f"in [{section}]"
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(sorted(known))})"
            line = _line_of(text, (*path, key))
            raise ConfigError(file if line is None else f"{file}:{line}", f"unknown key '{key}' {where}{hint}")


def _line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The line where the key at ``path`` is written, ``None`` if it cannot be told.

    tomllib keeps no positions and tomlkit none that can be asked for, but tomlkit writes a document back as
    it was: the key's value is swapped for a marker, and the marker's line is the key's (quoted, dotted,
    inline or a table header of its own alike).
    """
    import tomlkit  # here: needed only to point at a refused key, not by every start of a server or the CLI
    import tomlkit.exceptions

    marker = f"splice-marker-{secrets.token_hex(8)}"
    try:
        document = tomlkit.parse(text)
        node: Any = document
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = marker
    except (tomlkit.exceptions.TOMLKitError, LookupError):
        return None
    rendered = document.as_string()
    at = rendered.find(marker)
    return None if at < 0 else rendered.count("\n", 0, at) + 1


def load_settings(directory: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the cluster's settings; raises ``ConfigError`` naming the file and the field."""
    directory = directory.resolve()
    path = directory / CONFIG_FILE
    file = str(path)
    env = environ or {}
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        if env.get("SPLICE_ODB"):
            from .environment import settings_from_environment

            return settings_from_environment(directory, env)
        raise ConfigError(
            file, "not found: is this a cluster directory? ('splice quickstart create DIR' makes one)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, f"not valid TOML: {exc}") from None
    _check_keys(data, text, file)
    cluster = _table(data, "cluster", file)
    deploy = _table(data, "deploy", file)
    servers = _servers(data, file)
    odb = env.get("SPLICE_ODB") or _get(cluster, "odb", str, file, "cluster", "sqlite+aiosqlite:///odb.sqlite")
    try:
        timeout = float(env.get("SPLICE_IMPORT_TIMEOUT") or _get(deploy, "import_timeout", float, file, "deploy", 5.0))
        max_bytes = int(
            env.get("SPLICE_MAX_MODULE_BYTES") or _get(deploy, "max_module_bytes", int, file, "deploy", 1 << 20)
        )
    except ValueError as exc:
        raise ConfigError("environment", f"SPLICE_IMPORT_TIMEOUT or SPLICE_MAX_MODULE_BYTES: {exc}") from None
    if not timeout > 0:
        raise ConfigError(file, f"must be more than 0 seconds, got {timeout}", "deploy.import_timeout")
    if max_bytes < 1:
        raise ConfigError(file, f"must be at least 1, got {max_bytes}", "deploy.max_module_bytes")
    cluster_timeout = _get(deploy, "cluster_timeout", float, file, "deploy", 10.0)
    sync_interval = _get(cluster, "sync_interval", float, file, "cluster", 1.0)
    if not cluster_timeout > 0 or not sync_interval > 0:
        raise ConfigError(file, "must be more than 0 seconds", "deploy.cluster_timeout or cluster.sync_interval")
    pickup = _table(data, "pickup", file)
    dirs = pickup.get("dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise ConfigError(file, f"must be a list of directories, got {dirs!r}", "pickup.dirs")
    balancer = None
    if "load_balancer" in data:
        table = _table(data, "load_balancer", file)
        port = _get(table, "port", int, file, "load_balancer")
        balancer = LoadBalancerSettings(_get(table, "host", str, file, "load_balancer", "127.0.0.1"), port)
    return Settings(
        directory=directory,
        cluster_name=_get(cluster, "name", str, file, "cluster", directory.name),
        odb_url=resolve_odb_url(odb, directory),
        servers=servers,
        max_module_bytes=max_bytes,
        import_timeout=timeout,
        log_level=env.get("SPLICE_LOG_LEVEL") or _get(cluster, "log_level", str, file, "cluster", "INFO"),
        redis_url=env.get("SPLICE_REDIS") or _get(cluster, "redis", str, file, "cluster", "") or None,
        cluster_timeout=cluster_timeout,
        sync_interval=sync_interval,
        pickup_dirs=tuple((directory / d).resolve() for d in dirs),
        load_balancer=balancer,
        scheduler=_schedulers(data, file),
        debug=_debug(data, file, len(servers)),
        openapi_public=_get(_table(data, "openapi", file), "public", bool, file, "openapi", False),
        dashboard_dir=_dashboard_dir(data, file, directory),
        calls=_calls(data, file),
        logs=_logs(data, file, env),
    )


def _calls(data: Mapping[str, Any], file: str) -> CallSettings:
    table = _table(data, "calls", file)
    default = CallSettings()
    timeout = _get(table, "timeout", float, file, "calls", default.timeout)
    threads = _get(table, "threads", int, file, "calls", default.threads)
    queue = _get(table, "queue", int, file, "calls", default.queue)
    if not timeout > 0:
        raise ConfigError(file, f"must be more than 0 seconds, got {timeout}", "calls.timeout")
    if threads < 1:
        raise ConfigError(file, f"must be at least 1, got {threads}", "calls.threads")
    if queue < 0:
        raise ConfigError(file, f"must be 0 or more, got {queue}", "calls.queue")
    return CallSettings(timeout, threads, queue)


def _logs(data: Mapping[str, Any], file: str, env: Mapping[str, str]) -> LogSettings:
    table = _table(data, "logs", file)
    fmt = env.get("SPLICE_LOG_FORMAT") or _get(table, "format", str, file, "logs", "text")
    if fmt not in LOG_FORMATS:
        where = "$SPLICE_LOG_FORMAT" if env.get("SPLICE_LOG_FORMAT") else "logs.format"
        raise ConfigError(file, f"must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}", where)
    access = _get(table, "access", bool, file, "logs", False)
    if raw := env.get("SPLICE_ACCESS_LOG"):
        access = raw.strip().lower() in ("1", "true", "yes", "on")
    return LogSettings(fmt, access)


def _dashboard_dir(data: Mapping[str, Any], file: str, directory: Path) -> Path | None:
    if "dashboard" not in data:
        return None
    name: str = _get(_table(data, "dashboard", file), "dir", str, file, "dashboard")
    if not name.strip():
        raise ConfigError(file, "must name the dashboard's directory, got an empty string", "dashboard.dir")
    return (directory / name).resolve()


def render_config(
    name: str,
    odb: str,
    servers: list[tuple[str, str, int]],
    *,
    redis: str | None = None,
    pickup: list[str] | None = None,
    load_balancer: tuple[str, int] | None = None,
    schedulers: list[str] | None = None,
) -> str:
    """The text of a new ``cluster.toml``."""
    lines = [
        "# Splice cluster configuration; see 'splice --help'.",
        "[cluster]",
        f"name = {_toml_str(name)}",
        f"odb = {_toml_str(odb)}",
        f"redis = {_toml_str(redis or '')}  # the cluster bus; empty: servers call each other over HTTP",
        "",
        "[deploy]",
        "max_module_bytes = 1048576",
        "import_timeout = 5.0",
        "cluster_timeout = 10.0",
        "",
        "[pickup]",
        f"dirs = [{', '.join(_toml_str(d) for d in pickup or [])}]",
    ]
    if load_balancer is not None:
        lines += ["", "[load_balancer]", f"host = {_toml_str(load_balancer[0])}", f"port = {load_balancer[1]}"]
    for server_name, host, port in servers:
        lines += ["", "[[servers]]", f"name = {_toml_str(server_name)}", f"host = {_toml_str(host)}", f"port = {port}"]
    for scheduler in schedulers or []:
        lines += ["", "[[schedulers]]", f"name = {_toml_str(scheduler)}"]
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif (char < " " and char != "\t") or char == "\x7f":  # TOML refuses these unescaped
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


__all__ = [
    "CONFIG_FILE",
    "KNOWN_KEYS",
    "LOG_FORMATS",
    "LOOPBACK",
    "MAX_WORKERS",
    "TOKEN_FILE",
    "CallSettings",
    "DebugSettings",
    "LoadBalancerSettings",
    "LogSettings",
    "SchedulerSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
    "member_name",
    "render_config",
    "resolve_odb_url",
    "split_member",
    "workers_of",
]
