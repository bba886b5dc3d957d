"""Distributed creation: a cluster spread over hosts, one step per command for provisioning tools.

    splice create odb URL                          # the schema, in PostgreSQL or MySQL/MariaDB
    splice create cluster NAME --odb URL           # the cluster's row, internal and admin tokens
    splice create server DIR --odb URL --cluster NAME [--redis URL] --name server1 --host H --port P

Each server directory is a cluster directory of its own (``cluster.toml`` naming the shared ODB, the
cluster and, across hosts, Redis), holding the servers of that host; the servers find each other
through the ODB, where each registers when created and says it is alive while it runs.

Every server and scheduler of the cluster needs the same cluster key (``secret-key``, or ``$SPLICE_SECRET_KEY``):
it decrypts outgoing connections' secrets and derives the internal token the servers present to each other. A new
server directory gets none: copy the file from the first one, or set the variable on every host.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

from ..channels.security import new_token, token_digest
from ..config import CONFIG_FILE, load_settings, render_config
from ..connections.secrets import KEY_FILE, KEY_VARIABLE
from ..files import owner_only
from .cluster import CliError, with_workers


async def _with_repository(url: str, cluster: str | None, action: Any) -> Any:
    from ..odb import OdbRepository, connect
    from ..odb.engine import HEAD, schema_revision

    engine = connect(url)
    try:
        if cluster is None:
            return await action(engine, None)
        if await schema_revision(engine) != HEAD:
            raise CliError(f"the ODB at {_safe(url)} has no Splice schema (yet): run 'splice create odb URL' first")
        repository = OdbRepository(engine, cluster)
        return await action(engine, repository)
    finally:
        await engine.dispose()


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":")[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


def _write_token(path: Path, token: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")


def create_odb(url: str) -> None:
    """Create or upgrade the schema in the database at ``url`` (idempotent)."""
    from ..odb import migrate

    async def action(engine: Any, _: Any) -> None:
        await migrate(engine)

    asyncio.run(_with_repository(url, None, action))


def create_cluster(url: str, name: str, token_file: Path | None) -> str:
    """Create cluster ``name`` in the ODB (idempotent) and a new admin token for it; returns the token."""
    token = new_token()

    async def action(engine: Any, repository: Any) -> None:
        await repository.ensure_cluster()
        await repository.add_token(f"admin:{socket.gethostname()}:{os.getpid()}", token_digest(token))

    asyncio.run(_with_repository(url, name, action))
    if token_file is not None:
        _write_token(token_file, token)
    return token


def create_server_directory(
    directory: Path,
    *,
    odb: str,
    cluster: str,
    name: str,
    host: str,
    port: int,
    redis: str | None,
    workers: int | str = 1,
) -> dict[str, Any]:
    """A new directory for one server of an existing cluster: its config (``workers`` processes sharing its port),
    work dirs, admin token, registration."""
    directory = directory.resolve()
    if (directory / CONFIG_FILE).exists() or (directory.exists() and any(directory.iterdir())):
        raise CliError(f"{directory} is not empty; a new server directory needs an empty or new one")
    token = new_token()
    url = f"http://{host}:{port}"

    async def action(engine: Any, repository: Any) -> None:
        from sqlalchemy import select

        from ..odb.models import Cluster

        async with engine.connect() as conn:
            found = (await conn.execute(select(Cluster.id).where(Cluster.name == cluster))).first()
        if found is None:
            raise CliError(f"no cluster named '{cluster}' in the ODB: run 'splice create cluster {cluster} --odb URL'")
        await repository.ensure_cluster()
        taken = [s for s in await repository.servers() if s["name"] == name and s["url"] != url]
        if taken:
            raise CliError(f"cluster '{cluster}' already has a server named '{name}' (at {taken[0]['url']})")
        await repository.register_server(name, url, 0, 0)
        await repository.mark_stopped(name)
        await repository.add_token(f"admin:{name}", token_digest(token))

    asyncio.run(_with_repository(odb, cluster, action))
    directory.mkdir(parents=True, exist_ok=True)
    owner_only(directory)
    (directory / CONFIG_FILE).write_text(
        with_workers(render_config(cluster, odb, [(name, host, port)], redis=redis), workers), encoding="utf-8"
    )
    settings = load_settings(directory)
    settings.deployed_dir(name).mkdir(parents=True)
    (settings.server_dir(name) / "logs").mkdir()
    _write_token(settings.token_file, token)
    print(key_note(directory, cluster))
    return {"directory": str(directory), "cluster": cluster, "server": name, "url": url}


def key_note(directory: Path, cluster: str) -> str:
    """What a new server directory needs before it starts: the cluster's key, the same on every server."""
    if os.environ.get(KEY_VARIABLE):
        return f"cluster key: ${KEY_VARIABLE} (set it to the same value for every server and scheduler of '{cluster}')"
    return (
        f"cluster key: every server and scheduler of '{cluster}' needs the same one. Copy {KEY_FILE} from the"
        f" cluster's first server directory to {directory / KEY_FILE} (mode 0600), or set ${KEY_VARIABLE} on every"
        f" host; a server started without either makes a key of its own, and then cannot decrypt the cluster's"
        f" outgoing secrets nor be called by its peers (401)"
    )


def register(sub: Any, cluster_arg: Any) -> None:
    from .lb import create_subparsers

    odb = create_subparsers(sub).add_parser("odb", help="create or upgrade the Splice schema in a database")
    odb.add_argument("url", help="e.g. postgresql+asyncpg://user@host/db or mysql+aiomysql://user@host/db")
    cluster = create_subparsers(sub).add_parser("cluster", help="a cluster in an ODB, and an admin token for it")
    cluster.add_argument("name")
    cluster.add_argument("--odb", required=True, help="the ODB URL")
    cluster.add_argument(
        "--token-file", type=Path, help="write the admin token there (mode 0600) instead of printing it"
    )


def run(args: Any) -> int | None:
    what = (args.command, getattr(args, "what", None))
    if what == ("create", "odb"):
        create_odb(args.url)
        print(f"the Splice schema is up to date in {_safe(args.url)}")
        return 0
    if what == ("create", "cluster"):
        token = create_cluster(args.odb, args.name, args.token_file)
        print(f"cluster '{args.name}' is in {_safe(args.odb)}")
        print(f"admin token written to {args.token_file}" if args.token_file else f"admin token: {token}")
        return 0
    return None
