"""The admin API under ``/splice/admin/``: every endpoint needs ``Authorization: Bearer <token>``.

Handlers only translate: they take their body as a model, call the runtime, and answer a model; ``OPERATIONS``
names each endpoint's models, which check bodies, serialise answers and make the OpenAPI document
(``operations``, ``openapi``). Domain errors become HTTP answers in one place (``operations.endpoint``).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.routing import Route

from ..channels.security import hash_secret, token_digest
from ..channels.specs import AmqpChannel, ChannelOfAnyKind, channel_columns
from ..core.context import current_cid
from ..core.errors import NotFound
from ..deploy import ModuleSource, Rollout
from ..odb.repository import seen_within
from . import (
    admin_audit,
    admin_cache,
    admin_debug,
    admin_deployments,
    admin_events,
    admin_jobs,
    admin_logs,
    admin_metrics,
    admin_outgoing,
    admin_pubsub,
)
from .admin_apply import apply
from .admin_history import deployed_by, rollback
from .openapi import document
from .operations import AdminRoute, Operation
from .operations import routes as operation_routes
from .pickup import pickup_status
from .responses import payload_json
from .schemas import common, config
from .schemas import deploy as deploying
from .schemas import runtime as about

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
PREFIX = "/splice/admin"


INTERNAL_PATHS = frozenset(
    PREFIX + path for path in ("/cluster/sync", "/cluster/events", "/scheduler/dispatch", "/pickup")
)
"""What the cluster's own processes call on a server with the internal token (``cluster.credentials``): the HTTP
bus's notices and events, the scheduler's batches, a peer asking for its pickup batches; plus
``_INTERNAL_PING``, a peer forwarding a connection's ping. Nothing else opens with it."""
_INTERNAL_PING = re.compile(re.escape(PREFIX) + r"/outgoing/[^/]+/ping")


def internal_path(path: str) -> bool:
    """Whether the internal token opens ``path``."""
    return path in INTERNAL_PATHS or _INTERNAL_PING.fullmatch(path) is not None


def authorized(runtime: Runtime, header: str, path: str) -> bool:
    """Whether ``header`` (``Authorization``) opens admin ``path``: an admin token opens every path, the cluster's
    internal token only the ``internal_path`` ones. Digests are compared in constant time."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    digest = token_digest(token.strip())
    admin = any(hmac.compare_digest(digest, known) for known in runtime.token_hashes)
    internal = runtime.repository.internal_token
    if admin or not internal or not internal_path(path):
        return admin
    return hmac.compare_digest(digest, token_digest(internal))


async def server_info(runtime: Runtime, request: Request, body: None) -> about.ServerInfo:
    return about.ServerInfo(
        name=runtime.server.name,
        cluster=runtime.settings.cluster_name,
        url=runtime.server.url,
        pid=runtime.pid,
        started_at=runtime.started_at,
        services=len(runtime.store.snapshot()),
        modules=len(runtime.engine.records),
        deployed_dir=str(runtime.engine.deployed_dir),
        load_failures=[str(p) for p in runtime.engine.load_failures],
    )


async def deploy(runtime: Runtime, request: Request, body: deploying.DeployBody) -> deploying.DeployAnswer:
    sources = [ModuleSource(module.path, module.source) for module in body.modules]
    rollout = await runtime.deployments.deploy(sources, by=deployed_by(body))
    result = rollout.result
    return deploying.DeployAnswer(
        server=runtime.server.name,
        status=_status(rollout, "deployed"),
        sequence=result.sequence,
        modules=result.modules,  # type: ignore[arg-type]  # validated into DeployedModule
        reloaded=result.reloaded,
        timings=result.timings,
        servers=rollout.servers,  # type: ignore[arg-type]
    )


def _status(rollout: Rollout[Any], done: str) -> Any:
    """A cluster-wide answer's status: ``done`` only if every server confirmed it."""
    return done if rollout.ok else "partial"


async def undeploy(runtime: Runtime, request: Request, body: deploying.UndeployBody) -> deploying.UndeployAnswer:
    rollout = await runtime.deployments.undeploy(body.paths, by=deployed_by(body))
    result = rollout.result
    return deploying.UndeployAnswer(
        server=runtime.server.name,
        status=_status(rollout, "undeployed"),
        sequence=result.sequence,
        paths=result.paths,
        services=result.services,
        total_ms=result.total_ms,
        servers=rollout.servers,  # type: ignore[arg-type]
    )


async def cluster_sync(runtime: Runtime, request: Request, body: about.SyncBody) -> Any:
    """A peer's notice (the HTTP bus): sync with the ODB now and answer this server's outcome."""
    return await runtime.cluster.on_notice(body.sequence, body.origin, body.change)


async def cluster_info(runtime: Runtime, request: Request, body: None) -> about.ClusterAnswer:
    servers = await runtime.repository.servers()
    liveness = runtime.cluster.liveness
    for server in servers:
        server["live"] = seen_within(server, liveness)
        server["last_seen"] = server["last_seen"].isoformat() if server["last_seen"] else None
    bus = about.Bus(kind="redis" if runtime.settings.redis_url else "http", connected=runtime.cluster.bus.connected)
    return about.ClusterAnswer(
        cluster=runtime.settings.cluster_name,
        bus=bus,
        sequence=await runtime.repository.last_sequence(),
        servers=servers,  # type: ignore[arg-type]
    )


async def list_modules(runtime: Runtime, request: Request, body: None) -> deploying.ModulesAnswer:
    return deploying.ModulesAnswer(
        modules=[
            deploying.ModuleInfo(
                path=r.path,
                module=r.module,
                version=r.version,
                sha256=r.sha256,
                sequence=r.sequence,
                services=[info.name for info in runtime.store.by_module(r.module)],
            )
            for r in sorted(runtime.engine.records.values(), key=lambda r: r.path)
        ]
    )


async def module_history(runtime: Runtime, request: Request, body: None) -> deploying.HistoryAnswer:
    path = request.path_params["path"]
    history = await runtime.repository.history(path)
    if not history:
        raise NotFound(f"no module was ever deployed at {path}")
    current = runtime.engine.records.get(path)
    return deploying.HistoryAnswer(
        path=path,
        current=current.version if current else None,
        versions=history,  # type: ignore[arg-type]
    )


async def list_services(runtime: Runtime, request: Request, body: None) -> Any:
    snapshot = runtime.store.snapshot()
    return {"services": [snapshot[name].as_dict() for name in sorted(snapshot)]}


async def get_service(runtime: Runtime, request: Request, body: None) -> Any:
    return runtime.invoker.lookup(request.path_params["name"]).as_dict()


async def invoke(runtime: Runtime, request: Request, body: about.InvokeBody) -> about.InvokeAnswer:
    response = await runtime.invoker.call(body.service, body.payload, cid=current_cid.get())
    payload = response.payload
    out = about.InvokeAnswer(cid=current_cid.get(), service=body.service, status=response.status or 200, payload=None)
    if isinstance(payload, bytes | bytearray):
        out["payload"] = base64.b64encode(payload).decode()
        out["payload_encoding"] = "base64"
    else:  # what a channel would answer: refused (500 naming the place) if JSON cannot carry it
        out["payload"] = json.loads(payload_json(payload, body.service))
    return out


async def list_channels(runtime: Runtime, request: Request, body: None) -> Any:
    return {"channels": await runtime.repository.list_channels()}


async def create_channel(runtime: Runtime, request: Request, body: ChannelOfAnyKind) -> config.ChannelAnswer:
    if isinstance(body, AmqpChannel):
        connections = {row["name"]: row["kind"] for row in await runtime.repository.list_outgoing()}
        if connections.get(body.connection) != "amqp":
            other = connections.get(body.connection)
            what = (
                f"'{body.connection}' is a {other} connection" if other else f"no connection named '{body.connection}'"
            )
            raise NotFound(f"channel '{body.name}' consumes through an amqp connection: {what}")
    await runtime.repository.create_channel(body.name, **channel_columns(body))
    servers = await runtime.config_changed("channel")
    service = getattr(body, "service", None)  # a JSON-RPC channel names patterns of services instead
    missing = service is not None and runtime.store.get(service) is None
    warning = f"no service named '{service}' is deployed yet" if missing else None
    return config.ChannelAnswer(
        **body.model_dump(),
        warning=warning,
        servers=servers,  # type: ignore[arg-type]
    )


async def delete_channel(runtime: Runtime, request: Request, body: None) -> common.Deleted:
    await runtime.repository.delete_channel(request.path_params["name"])
    servers = await runtime.config_changed("channel")
    return common.Deleted(deleted=request.path_params["name"], servers=servers)  # type: ignore[arg-type]


async def list_security(runtime: Runtime, request: Request, body: None) -> config.SecurityListAnswer:
    rows = await runtime.repository.list_security()
    return config.SecurityListAnswer(security=[config.SecurityRow.model_validate(row) for row in rows])


async def create_security(
    runtime: Runtime, request: Request, body: config.BasicSecurityBody | config.ApiKeySecurityBody
) -> config.SecurityAnswer:
    secret = body.password if isinstance(body, config.BasicSecurityBody) else body.key
    await runtime.repository.create_security(body.name, body.kind, body.username, body.header, hash_secret(secret))
    servers = await runtime.config_changed("security")
    return config.SecurityAnswer(
        name=body.name,
        kind=body.kind,
        username=body.username,
        header=body.header,
        servers=servers,  # type: ignore[arg-type]
    )


async def delete_security(runtime: Runtime, request: Request, body: None) -> common.Deleted:
    await runtime.repository.delete_security(request.path_params["name"])
    servers = await runtime.config_changed("security")
    return common.Deleted(deleted=request.path_params["name"], servers=servers)  # type: ignore[arg-type]


async def openapi(runtime: Runtime, request: Request, body: None) -> dict[str, Any]:
    return document(runtime.server.url, OPERATIONS)


OPERATIONS: list[Operation] = [
    Operation("GET", "/server", server_info, "This server: name, cluster, pid, counts", about.ServerInfo),
    Operation(
        "POST",
        "/deploy",
        deploy,
        "Deploy modules together on every server, all or nothing",
        deploying.DeployAnswer,
        body=deploying.DeployBody,
        errors=(413, 422),
    ),
    Operation(
        "POST",
        "/undeploy",
        undeploy,
        "Remove modules and their services from every server",
        deploying.UndeployAnswer,
        body=deploying.UndeployBody,
        errors=(404, 413),
    ),
    Operation("GET", "/modules", list_modules, "Deployed modules with versions and services", deploying.ModulesAnswer),
    Operation(
        "GET",
        "/modules/{path:path}/history",
        module_history,
        "Every version of a module",
        deploying.HistoryAnswer,
        errors=(404,),
    ),
    Operation("GET", "/services", list_services, "Deployed services with their declared fields", about.ServicesAnswer),
    Operation("GET", "/services/{name:path}", get_service, "One service", about.OneService, errors=(404,)),
    Operation(
        "POST",
        "/invoke",
        invoke,
        "Invoke a service (a service that raises answers 500 service_failed)",
        about.InvokeAnswer,
        body=about.InvokeBody,
        errors=(404, 413),
    ),
    Operation("GET", "/channels", list_channels, "Channels of every kind", config.ChannelsAnswer),
    Operation(
        "POST",
        "/channels",
        create_channel,
        "Create a channel of any kind: rest, websocket, jsonrpc, amqp, file (a [[channels]] table of splice.toml)",
        config.ChannelAnswer,
        body=config.AnyChannelBody,
        status=201,
        errors=(404, 409, 413),
    ),
    Operation("DELETE", "/channels/{name:path}", delete_channel, "Delete a channel", common.Deleted, errors=(404,)),
    Operation(
        "GET", "/security", list_security, "Security definitions (secrets are never shown)", config.SecurityListAnswer
    ),
    Operation(
        "POST",
        "/security",
        create_security,
        "Create a security definition (what a [[security]] table of splice.toml declares, with its secret)",
        config.SecurityAnswer,
        body=config.SecurityBody,
        status=201,
        errors=(409, 413),
    ),
    Operation(
        "DELETE",
        "/security/{name:path}",
        delete_security,
        "Delete a security definition no channel uses",
        common.Deleted,
        errors=(404, 409),
    ),
    Operation("GET", "/openapi.json", openapi, "This document", common.OpenApiDocument),
    Operation(
        "GET",
        "/cluster",
        cluster_info,
        "The cluster's servers: live or not, the sequence each applied",
        about.ClusterAnswer,
    ),
    Operation(
        "POST",
        "/cluster/sync",
        cluster_sync,
        "Sync this server with the ODB now (how servers notify each other without Redis)",
        about.SyncAnswer,
        body=about.SyncBody,
        errors=(413,),
    ),
    Operation(
        "POST",
        "/rollback",
        rollback,
        "Deploy a stored version of a module again, as a new version, on every server",
        deploying.RollbackAnswer,
        body=deploying.RollbackBody,
        errors=(404, 413, 422),
    ),
    Operation(
        "POST",
        "/apply",
        apply,
        "Apply a declaration file (security, outgoing connections, channels, jobs); secrets by variable name",
        config.ApplyAnswer,
        body=config.ApplyBody,
        errors=(409, 413, 422),
    ),
    Operation(
        "GET",
        "/pickup",
        pickup_status,
        "Pickup directories: which server acts on each, and its last batch",
        about.PickupAnswer,
        query=about.PickupQuery,
    ),
    *admin_outgoing.OPERATIONS,
    *admin_cache.OPERATIONS,
    *admin_events.OPERATIONS,
    *admin_pubsub.OPERATIONS,
    *admin_jobs.OPERATIONS,
    *admin_debug.OPERATIONS,
    *admin_logs.OPERATIONS,
    *admin_metrics.OPERATIONS,
    *admin_deployments.OPERATIONS,
    *admin_audit.OPERATIONS,
    admin_jobs.DISPATCH,
]


def routes(runtime: Runtime) -> list[Route]:
    served = [operation for operation in OPERATIONS if operation.media_type == "application/json"]
    return [
        *operation_routes(runtime, PREFIX, served),
        # The scheduler's batches stream their outcomes: not a JSON-in, JSON-out endpoint.
        AdminRoute(PREFIX + "/scheduler/dispatch", admin_jobs.dispatch_endpoint(runtime), methods=["POST"]),
    ]
