"""The admin API under ``/splice/admin/``: every endpoint needs ``Authorization: Bearer <token>``.

Handlers only translate: they read JSON, call the runtime, and answer JSON; domain errors become
HTTP answers in one place (``endpoint``).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..channels import routing
from ..channels.security import KINDS, hash_secret, token_digest
from ..core.context import current_cid
from ..core.errors import BadRequest, NotFound, SpliceError
from ..core.naming import check_service_name
from ..deploy import ModuleSource, Rollout
from ..odb.repository import seen_within
from . import admin_debug, admin_jobs
from .admin_apply import apply
from .admin_history import rollback
from .openapi import document
from .pickup import pickup_status
from .responses import error_response, json_response

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
Handler = Callable[["Runtime", Request, dict[str, Any]], Awaitable[Any]]


def authorized(runtime: Runtime, header: str) -> bool:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    digest = token_digest(token.strip())
    return any(hmac.compare_digest(digest, known) for known in runtime.token_hashes)


def _require(body: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"field '{name}' is required")
        return None
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequest(f"field '{name}' must be {expected}, got {type(value).__name__}")
    return value


def endpoint(runtime: Runtime, handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        cid = current_cid.get()
        try:
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT", "PATCH"):
                raw = await request.body()
                if raw:
                    try:
                        parsed = json.loads(raw)
                    except (ValueError, RecursionError) as exc:
                        raise BadRequest(f"the body is not valid JSON: {exc}") from None
                    if not isinstance(parsed, dict):
                        raise BadRequest("the body must be a JSON object")
                    body = parsed
            result = await handler(runtime, request, body)
        except SpliceError as exc:
            return error_response(exc, cid)
        return json_response(result, cid, status)

    return run


async def server_info(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return {
        "name": runtime.server.name,
        "cluster": runtime.settings.cluster_name,
        "url": runtime.server.url,
        "pid": runtime.pid,
        "started_at": runtime.started_at,
        "services": len(runtime.store.snapshot()),
        "modules": len(runtime.engine.records),
        "deployed_dir": str(runtime.engine.deployed_dir),
        "load_failures": [str(p) for p in runtime.engine.load_failures],
    }


async def deploy(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    modules = _require(body, "modules", list)
    sources = []
    for index, item in enumerate(modules):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("path"), str)
            or not isinstance(item.get("source"), str)
        ):
            raise BadRequest(f"modules[{index}] must be an object with string fields 'path' and 'source'")
        sources.append(ModuleSource(item["path"], item["source"]))
    by = _require(body, "deployed_by", str, required=False) or "admin-api"
    rollout = await runtime.deployments.deploy(sources, by=by)
    return _cluster_answer(runtime, rollout, rollout.result.as_dict(), "deployed")


def _cluster_answer(runtime: Runtime, rollout: Rollout[Any], result: dict[str, Any], done: str) -> Any:
    """A cluster-wide answer: ``status`` is ``done`` only if every server confirmed it."""
    status = done if rollout.ok else "partial"
    return {"server": runtime.server.name, "status": status, **result, "servers": rollout.servers}


async def undeploy(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    paths = _require(body, "paths", list)
    if not paths or not all(isinstance(p, str) for p in paths):
        raise BadRequest("field 'paths' must be a non-empty list of module paths")
    by = _require(body, "deployed_by", str, required=False) or "admin-api"
    rollout = await runtime.deployments.undeploy(paths, by=by)
    return _cluster_answer(runtime, rollout, rollout.result.as_dict(), "undeployed")


async def cluster_sync(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    """A peer's notice (the HTTP bus): sync with the ODB now and answer this server's outcome."""
    sequence = _require(body, "sequence", int)
    return await runtime.cluster.on_notice(sequence, _require(body, "origin", str, required=False) or "")


async def cluster_info(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    servers = await runtime.repository.servers()
    liveness = runtime.cluster.liveness
    for server in servers:
        server["live"] = seen_within(server, liveness)
        server["last_seen"] = server["last_seen"].isoformat() if server["last_seen"] else None
    newest = await runtime.repository.last_sequence()
    bus = {
        "kind": "redis" if runtime.settings.redis_url else "http",
        "connected": runtime.cluster.bus.connected,
    }
    return {"cluster": runtime.settings.cluster_name, "bus": bus, "sequence": newest, "servers": servers}


async def list_modules(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return {
        "modules": [
            {
                "path": r.path,
                "module": r.module,
                "version": r.version,
                "sha256": r.sha256,
                "sequence": r.sequence,
                "services": [info.name for info in runtime.store.by_module(r.module)],
            }
            for r in sorted(runtime.engine.records.values(), key=lambda r: r.path)
        ]
    }


async def module_history(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    path = request.path_params["path"]
    history = await runtime.repository.history(path)
    if not history:
        raise NotFound(f"no module was ever deployed at {path}")
    current = runtime.engine.records.get(path)
    return {"path": path, "current": current.version if current else None, "versions": history}


async def list_services(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    snapshot = runtime.store.snapshot()
    return {"services": [snapshot[name].as_dict() for name in sorted(snapshot)]}


async def get_service(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    info = runtime.invoker.lookup(request.path_params["name"])
    return info.as_dict()


async def invoke(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    name = _require(body, "service", str)
    response = await runtime.invoker.call(name, body.get("payload"), cid=current_cid.get())
    payload = response.payload
    out: dict[str, Any] = {"cid": current_cid.get(), "service": name, "status": response.status or 200}
    if isinstance(payload, bytes | bytearray):
        out.update(payload=base64.b64encode(payload).decode(), payload_encoding="base64")
    else:
        out["payload"] = payload
    return out


async def list_channels(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return {"channels": await runtime.repository.list_channels()}


async def create_channel(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    name = _require(body, "name", str)
    path = _require(body, "path", str)
    service = _require(body, "service", str)
    security = _require(body, "security", str, required=False)
    methods = _require(body, "methods", list, required=False) or ["GET"]
    problem = routing.check_pattern(path) or check_service_name(service) or check_service_name(name)
    if problem:
        raise BadRequest(problem)
    try:
        methods = routing.check_methods(str(m) for m in methods)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    await runtime.repository.create_channel(name, path, methods, service, security)
    servers = await runtime.config_changed("channel")
    warning = None if runtime.store.get(service) else f"no service named '{service}' is deployed yet"
    return {
        "name": name,
        "path": path,
        "methods": methods,
        "service": service,
        "security": security,
        "warning": warning,
        "servers": servers,
    }


async def delete_channel(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    await runtime.repository.delete_channel(request.path_params["name"])
    return {"deleted": request.path_params["name"], "servers": await runtime.config_changed("channel")}


async def list_security(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    rows = await runtime.repository.list_security()
    return {"security": [{k: v for k, v in row.items() if k not in ("id", "secret_hash")} for row in rows]}


async def create_security(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    name = _require(body, "name", str)
    kind = _require(body, "kind", str)
    if kind not in KINDS:
        raise BadRequest(f"field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    secret = _require(body, "password" if kind == "basic" else "key", str)
    username = _require(body, "username", str) if kind == "basic" else None
    header = (_require(body, "header", str, required=False) or "X-API-Key") if kind == "apikey" else None
    await runtime.repository.create_security(name, kind, username, header, hash_secret(secret))
    servers = await runtime.config_changed("security")
    return {"name": name, "kind": kind, "username": username, "header": header, "servers": servers}


async def delete_security(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    await runtime.repository.delete_security(request.path_params["name"])
    return {"deleted": request.path_params["name"], "servers": await runtime.config_changed("security")}


async def openapi(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return document(runtime.server.url)


def routes(runtime: Runtime) -> list[Route]:
    prefix = "/splice/admin"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/server", server_info),
        ("POST", "/deploy", deploy),
        ("POST", "/undeploy", undeploy),
        ("GET", "/modules", list_modules),
        ("GET", "/modules/{path:path}/history", module_history),
        ("GET", "/services", list_services),
        ("GET", "/services/{name:path}", get_service),
        ("POST", "/invoke", invoke),
        ("GET", "/channels", list_channels),
        ("POST", "/channels", create_channel),
        ("DELETE", "/channels/{name:path}", delete_channel),
        ("GET", "/security", list_security),
        ("POST", "/security", create_security),
        ("DELETE", "/security/{name:path}", delete_security),
        ("GET", "/openapi.json", openapi),
        ("GET", "/cluster", cluster_info),
        ("POST", "/cluster/sync", cluster_sync),
        ("POST", "/rollback", rollback),
        ("POST", "/apply", apply),
        ("GET", "/pickup", pickup_status),
        *admin_jobs.TABLE,
        *admin_debug.TABLE,
    ]
    created = {create_channel, create_security, *admin_jobs.CREATED}
    return [
        *(
            Route(prefix + path, endpoint(runtime, handler, 201 if handler in created else 200), methods=[method])
            for method, path, handler in table
        ),
        # The scheduler's batches stream their outcomes: not a JSON-in, JSON-out endpoint.
        Route(prefix + "/scheduler/dispatch", admin_jobs.dispatch_endpoint(runtime), methods=["POST"]),
    ]
