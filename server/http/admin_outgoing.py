"""Admin API for outgoing connections (``/splice/admin/outgoing...``): define, change, delete, ping.

A change is recorded as a configuration change like a channel's: every server reloads its connections from
the ODB, and only the connection that changed is reopened there (``connections.Connections.reload``). Secrets
in a body are encrypted with the cluster key before they reach the ODB, and never come back: answers show
``"***"`` for each secret that is set. A ``PUT`` without secrets keeps the stored ones (change an address
without sending the password again); a ``PUT`` with secrets replaces them all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..connections import KINDS, MASK, OutgoingSpec
from ..core.outgoing import InvalidConnection
from ..odb import Sealed
from .operations import Operation
from .schemas import common
from .schemas import outgoing as schemas

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
PING_TIMEOUT = 15.0


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """A stored connection as answers show it: its spec, each set secret as ``***``."""
    return {**row["config"], **dict.fromkeys(row["secret_names"], MASK)}


async def list_outgoing(runtime: Runtime, request: Request, body: None) -> Any:
    return {"outgoing": [shown(row) for row in await runtime.repository.list_outgoing()]}


async def get_outgoing(runtime: Runtime, request: Request, body: None) -> Any:
    return shown(await runtime.repository.get_outgoing(request.path_params["name"]))


async def create_outgoing(runtime: Runtime, request: Request, body: OutgoingSpec) -> Any:
    return await _put(runtime, body, replace=False)


async def replace_outgoing(runtime: Runtime, request: Request, body: OutgoingSpec) -> Any:
    if body.name != request.path_params["name"]:
        raise InvalidConnection(
            f"the body names '{body.name}', the path '{request.path_params['name']}': they must agree"
        )
    return await _put(runtime, body, replace=True)


async def _put(runtime: Runtime, body: OutgoingSpec, replace: bool) -> Any:
    secrets = {name: value for name in type(body).SECRETS if (value := getattr(body, name, None)) is not None}
    spec = KINDS[body.kind].spec.model_validate(body.model_dump(exclude=set(type(body).SECRETS)))
    check_secrets(spec, secrets)
    sealed = None
    if secrets:
        key = runtime.live.connections.key()
        sealed = Sealed(key.encrypt(secrets), tuple(sorted(secrets)), key.id)
    config = spec.model_dump(mode="json")
    created = await runtime.repository.put_outgoing(spec.name, spec.kind, config, sealed, replace)
    servers = await runtime.config_changed(f"outgoing:{spec.name}")
    row = await runtime.repository.get_outgoing(spec.name)
    return {"outgoing": shown(row), "created": created, "servers": servers}


def check_secrets(spec: OutgoingSpec, secrets: dict[str, str]) -> None:
    """What a kind's secrets need besides themselves (HTTP Basic needs a user name); ``InvalidConnection`` if not."""
    for _secret, message in type(spec).secret_problems(spec.username, secrets):
        raise InvalidConnection(f"outgoing connection '{spec.name}': {message}")


async def delete_outgoing(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    await runtime.repository.delete_outgoing(name)
    servers = await runtime.config_changed(f"outgoing:{name}")
    return common.Deleted(deleted=name, servers=servers)  # type: ignore[arg-type]


async def ping_outgoing(runtime: Runtime, request: Request, body: None) -> Any:
    """Ping from this server and (unless ``?here=true``) from every other live server, side by side."""
    name = request.path_params["name"]
    if name not in runtime.live.connections.kinds():
        await runtime.cluster.catch_up()  # a connection made a moment ago on another server
        if name not in runtime.live.connections.kinds():
            await runtime.repository.get_outgoing(name)  # NotFound when the cluster has none of that name
    here = request.query_params.get("here") == "true"
    mine = runtime.live.connections.ping(name)
    if here:
        results = [await mine]
    else:
        peers = await runtime.cluster.live_peers()
        results = await asyncio.gather(mine, *(_ping_peer(runtime, peer, name) for peer in peers))
    return {"name": name, "ok": all(r["ok"] for r in results), "servers": list(results)}


async def _ping_peer(runtime: Runtime, peer: dict[str, Any], name: str) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {runtime.repository.internal_token}"}
    url = f"{peer['url']}/splice/admin/outgoing/{name}/ping"
    try:
        async with httpx.AsyncClient(headers=headers, timeout=PING_TIMEOUT) as client:
            answer = await client.post(url, params={"here": "true"})
    except httpx.HTTPError as exc:
        return {"server": peer["name"], "ok": False, "ms": 0.0, "error": f"server unreachable: {exc}"}
    if answer.status_code != 200:
        return {"server": peer["name"], "ok": False, "ms": 0.0, "error": f"HTTP {answer.status_code}: {answer.text}"}
    result: dict[str, Any] = answer.json()["servers"][0]
    return result


OPERATIONS: list[Operation] = [
    Operation("GET", "/outgoing", list_outgoing, "Outgoing connections (secrets shown as ***)", schemas.OutgoingList),
    Operation(
        "POST",
        "/outgoing",
        create_outgoing,
        "Create an outgoing connection (what an [[outgoing]] table of splice.toml declares, with its secrets)",
        schemas.OutgoingAnswer,
        body=schemas.OutgoingBody,
        status=201,
        errors=(409, 413, 422),
    ),
    Operation(
        "POST",
        "/outgoing/{name}/ping",
        ping_outgoing,
        "Reach the connection's remote system from every live server",
        schemas.PingAnswer,
        query=schemas.PingQuery,
        errors=(404,),
    ),
    Operation("GET", "/outgoing/{name}", get_outgoing, "One outgoing connection", schemas.OutgoingRow, errors=(404,)),
    Operation(
        "PUT",
        "/outgoing/{name}",
        replace_outgoing,
        "Create or change an outgoing connection; every server reopens it, calls under way finish on the old one",
        schemas.OutgoingAnswer,
        body=schemas.OutgoingBody,
        errors=(413, 422),
    ),
    Operation(
        "DELETE",
        "/outgoing/{name}",
        delete_outgoing,
        "Delete an outgoing connection",
        common.Deleted,
        errors=(404,),
    ),
]


__all__ = ["OPERATIONS", "check_secrets", "shown"]
