"""Settings from the environment alone: a server, a scheduler or ``splice migrate`` in a container, no files.

``load_settings(DIR, environ)`` comes here when ``DIR/cluster.toml`` does not exist and ``SPLICE_ODB`` is set.
``DIR`` (``$SPLICE_HOME`` in the image, ``/var/lib/splice``) is then only a work directory: the server's deployed
files and its log go under it, and it may be empty (an ``emptyDir`` volume) at every start.

=========================  ==========================================================================================
``SPLICE_ODB``             the ODB's URL (PostgreSQL across hosts), required
``SPLICE_CLUSTER_NAME``    the cluster's name (default ``splice``): its row in the ODB; another name is another cluster
``SPLICE_SERVER_NAME``     this server's name, unique in the cluster (a StatefulSet pod's name); servers only
``SPLICE_HOST``            where the server listens (default ``0.0.0.0``)
``SPLICE_PORT``            its port (default 17010)
``SPLICE_ADVERTISE``       the URL other servers and the scheduler reach it at (default: ``http://HOST:PORT``)
``SPLICE_WORKERS``         worker processes sharing the port (default 1; ``auto``: one per CPU the process may use)
``SPLICE_REDIS``           the cluster bus (Redis); without it servers call each other at their advertised URLs
``SPLICE_SCHEDULER_NAME``  a scheduler process's name (``python -m splice.scheduler DIR --name NAME``)
``SPLICE_SECRET_KEY``      the cluster key (read by ``ClusterKey``): secrets and the internal token derive from it
``SPLICE_ADMIN_TOKEN``     an admin token ``splice server run`` registers at start (its sha256 only)
``SPLICE_SYNC_INTERVAL``   seconds between a server's checks of the ODB (default 1)
``SPLICE_CLUSTER_TIMEOUT`` seconds a deploy waits for the other servers (default 10)
=========================  ==========================================================================================

Also, as with a file: ``SPLICE_LOG_LEVEL``, ``SPLICE_LOG_FORMAT``, ``SPLICE_ACCESS_LOG``, ``SPLICE_IMPORT_TIMEOUT``,
``SPLICE_MAX_MODULE_BYTES``. A bad value is refused naming its variable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .core.errors import ConfigError
from .settings import (
    LOG_FORMATS,
    MAX_WORKERS,
    LogSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
    resolve_odb_url,
    split_member,
    workers_of,
)

DEFAULT_PORT = 17010
WHERE = "environment"


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float], default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(WHERE, f"must be a{'n integer' if kind is int else ' number'}, got {raw!r}", name) from None
    if not value > 0:
        raise ConfigError(WHERE, f"must be more than 0, got {raw!r}", name)
    return value


def _server(env: Mapping[str, str]) -> tuple[ServerSettings, ...]:
    name = env.get("SPLICE_SERVER_NAME", "").strip()
    if not name:
        return ()
    port = int(_number(env, "SPLICE_PORT", int, DEFAULT_PORT))
    if port > 65535:
        raise ConfigError(WHERE, f"must be between 1 and 65535, got {port}", "SPLICE_PORT")
    host = env.get("SPLICE_HOST", "").strip() or "0.0.0.0"
    advertise = env.get("SPLICE_ADVERTISE", "").strip().rstrip("/") or None
    if advertise is not None:
        parts = urlsplit(advertise)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ConfigError(
                WHERE, f"must be a base URL such as http://10.1.2.3:{port}, got {advertise!r}", "SPLICE_ADVERTISE"
            )
    elif host in ("0.0.0.0", "::"):
        raise ConfigError(
            WHERE,
            f"is needed when the server listens on {host}: the URL the other servers reach it at, "
            f"e.g. http://$(POD_IP):{port}",
            "SPLICE_ADVERTISE",
        )
    raw = env.get("SPLICE_WORKERS", "").strip() or "1"
    try:
        workers = workers_of(raw if raw == "auto" else int(raw), WHERE, "SPLICE_WORKERS")
    except (ValueError, ConfigError):
        why = f'must be a whole number from 1 to {MAX_WORKERS} or "auto", got {raw!r}'
        raise ConfigError(WHERE, why, "SPLICE_WORKERS") from None
    if split_member(name)[1] is not None:
        why = f"'{name}' ends like a worker's name (<server>.w<N>): choose another"
        raise ConfigError(WHERE, why, "SPLICE_SERVER_NAME")
    return (ServerSettings(name, host, port, 0, advertise, workers=workers),)


def settings_from_environment(directory: Path, env: Mapping[str, str]) -> Settings:
    """The settings of a server or scheduler configured by ``SPLICE_*`` variables alone (see the module's table);
    ``directory`` is its work directory. Raises ``ConfigError`` naming the variable."""
    odb = env.get("SPLICE_ODB", "").strip()
    if not odb:
        raise ConfigError(WHERE, "is required without a cluster.toml: the ODB's URL", "SPLICE_ODB")
    scheduler = env.get("SPLICE_SCHEDULER_NAME", "").strip()
    fmt = env.get("SPLICE_LOG_FORMAT", "").strip() or "text"
    if fmt not in LOG_FORMATS:
        raise ConfigError(WHERE, f"must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}", "SPLICE_LOG_FORMAT")
    access = env.get("SPLICE_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes", "on")
    token = env.get("SPLICE_ADMIN_TOKEN", "").strip()
    if token and len(token) < 32:
        raise ConfigError(
            WHERE, f"must be at least 32 characters (a random token), got {len(token)}", "SPLICE_ADMIN_TOKEN"
        )
    return Settings(
        directory=directory,
        cluster_name=env.get("SPLICE_CLUSTER_NAME", "").strip() or "splice",
        odb_url=resolve_odb_url(odb, directory),
        servers=_server(env),  # none for a scheduler or `splice migrate`: they reach servers through the ODB
        max_module_bytes=int(_number(env, "SPLICE_MAX_MODULE_BYTES", int, 1 << 20)),
        import_timeout=_number(env, "SPLICE_IMPORT_TIMEOUT", float, 5.0),
        log_level=env.get("SPLICE_LOG_LEVEL", "").strip() or "INFO",
        redis_url=env.get("SPLICE_REDIS", "").strip() or None,
        cluster_timeout=_number(env, "SPLICE_CLUSTER_TIMEOUT", float, 10.0),
        sync_interval=_number(env, "SPLICE_SYNC_INTERVAL", float, 1.0),
        scheduler=SchedulerSettings(names=(scheduler,) if scheduler else ()),
        logs=LogSettings(fmt, access),
        admin_token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else None,
        from_environment=True,
    )


ADMIN_TOKEN_NAME = "environment"
"""The name of the admin token ``$SPLICE_ADMIN_TOKEN`` registers (a new value replaces the one before)."""


async def register_admin_token(settings: Settings) -> None:
    """Keep the digest of ``$SPLICE_ADMIN_TOKEN`` among the cluster's admin tokens, before the server reads them.

    Refuses (``ConfigError``) an ODB whose schema is not at the head: ``splice migrate`` (an init container) first."""
    if settings.admin_token_sha256 is None:
        return
    from sqlalchemy.exc import IntegrityError

    from .odb import OdbRepository, connect, require_head

    engine = connect(settings.odb_url)
    try:
        await require_head(engine, settings.odb_url, settings.directory)
        repository = OdbRepository(engine, settings.cluster_name)
        await repository.ensure_cluster()
        if settings.admin_token_sha256 in await repository.token_hashes():
            return  # every server of the cluster starts with the same variable: the first one kept it
        try:
            await repository.add_token(ADMIN_TOKEN_NAME, settings.admin_token_sha256)
        except IntegrityError:  # another server starting at the same moment inserted it first
            if settings.admin_token_sha256 not in await repository.token_hashes():
                raise
    finally:
        await engine.dispose()


__all__ = ["ADMIN_TOKEN_NAME", "register_admin_token", "settings_from_environment"]
