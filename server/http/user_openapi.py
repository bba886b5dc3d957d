"""The OpenAPI 3.1 document of the cluster's REST channels: ``GET /splice/openapi.json``.

Every channel this server routes, with what its service declares: the JSON schema of ``Input`` as the request
body (``POST``, ``PUT``, ``PATCH``) or as query parameters (the other methods; fields that text cannot carry
stay in a body), path parameters from the channel's pattern, ``Output`` as the 200 answer. Nested models go to
``components/schemas`` under ``<service>.<model>``. The document names every channel and service, so it needs
the admin token, like the admin API, unless ``cluster.toml`` says ``[openapi] public = true``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..channels import routing
from ..core.context import current_cid
from .admin import authorized
from .responses import CID_HEADER, error_body, json_response

if TYPE_CHECKING:
    from ..channels.routing import Route as Channel
    from ..channels.security import SecurityDefinition
    from ..core.fields import Declared
    from ..core.store import ServiceInfo
    from ..runtime import Runtime

PATH = "/splice/openapi.json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SCALARS = frozenset({"string", "integer", "number", "boolean", "null"})
_ERROR = {"$ref": "#/components/schemas/Error"}
_UNAUTHORIZED = "the OpenAPI document of the channels needs 'Authorization: Bearer <token>' (the admin token)"


def route(runtime: Runtime) -> Route:
    """The endpoint, for the server's application."""

    async def openapi(request: Request) -> Response:
        cid = current_cid.get()
        if not runtime.settings.openapi_public and not authorized(
            runtime, request.headers.get("authorization", ""), request.url.path
        ):
            headers = {CID_HEADER: cid, "www-authenticate": "Bearer"}
            return Response(error_body(401, "unauthorized", _UNAUTHORIZED, cid), 401, headers, "application/json")
        servers = [runtime.server.url]
        if runtime.settings.load_balancer is not None:
            servers.insert(0, runtime.settings.load_balancer.url)
        title = f"{runtime.settings.cluster_name}: REST channels"
        return json_response(
            document(runtime.router.routes, runtime.store.snapshot(), runtime.securities, servers, title), cid
        )

    return Route(PATH, openapi, methods=["GET"])


def document(
    channels: Iterable[Channel],
    services: Mapping[str, ServiceInfo],
    securities: Mapping[str, SecurityDefinition],
    servers: Iterable[str],
    title: str,
) -> dict[str, Any]:
    """The document of ``channels`` (in the router's order: where two share a path and a method, the first answers)."""
    schemas: dict[str, Any] = {"Error": _error_schema()}
    schemes: dict[str, Any] = {}
    declared: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    paths: dict[str, dict[str, Any]] = {}
    for channel in channels:
        info = services.get(channel.service)
        if info is not None and info.name not in declared:
            prefix = component_prefix(info.name)
            declared[info.name] = (_schema(info.input, prefix, schemas), _schema(info.output, prefix, schemas))
        inputs, outputs = declared.get(channel.service, (None, None))
        security = securities.get(channel.security) if channel.security else None
        if security is not None:
            schemes[security.name] = _scheme(security)
        operations = paths.setdefault(routing.template(channel.pattern), {})
        for method in sorted(channel.methods):
            if method.lower() not in operations:
                operations[method.lower()] = _operation(channel, method, info, inputs, outputs, security, schemas)
    components: dict[str, Any] = {"schemas": schemas}
    if schemes:
        components["securitySchemes"] = schemes
    described = {"paths": paths, "components": components}
    version = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every REST channel with its service's declared Input and Output; the version changes "
            "whenever they do.",
        },
        "servers": [{"url": url} for url in servers],
        **described,
    }


def component_prefix(service: str) -> str:
    """``shop.get-item`` -> ``shop.get-item.``; characters a component name may not hold become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", service) + "."


def _schema(declared: Declared | None, prefix: str, schemas: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of a declaration, its nested models moved into ``schemas`` under ``prefix``."""
    if declared is None:
        return None
    schema = declared.json_schema(ref_template=f"#/components/schemas/{prefix}{{model}}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[prefix + name] = definition
    return schema


def _operation(
    channel: Channel,
    method: str,
    info: ServiceInfo | None,
    inputs: dict[str, Any] | None,
    outputs: dict[str, Any] | None,
    security: SecurityDefinition | None,
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    doc = info.doc if info is not None else ""
    operation: dict[str, Any] = {
        "operationId": f"{channel.name}.{method.lower()}",
        "summary": doc.splitlines()[0] if doc else f"channel {channel.name}: service {channel.service}",
        "tags": [channel.service],
    }
    if doc:
        operation["description"] = doc
    if info is None:
        operation["description"] = f"service '{channel.service}' is not deployed: the channel answers 404"
    fields = _object(inputs, schemas)
    properties = dict(fields.get("properties", {}))
    required = set(fields.get("required", ()))
    parameters = []
    for name, kind in routing.parameters(channel.pattern):
        declared = properties.pop(name, None)
        schema = declared or ({"type": "integer"} if kind == "int" else {"type": "string"})
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        required.discard(name)
    if method not in _BODY_METHODS:
        for name, schema in list(properties.items()):
            if _is_scalar(schema):
                del properties[name]
                parameters.append({"name": name, "in": "query", "required": name in required, "schema": schema})
                required.discard(name)
    if parameters:
        operation["parameters"] = parameters
    if inputs is None and method in _BODY_METHODS:
        operation["requestBody"] = {
            "description": "The service declares no Input: its payload as sent (JSON, text or bytes).",
            "required": False,
            "content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}},
        }
    elif inputs is not None and (properties or method in _BODY_METHODS):
        body = {**fields, "properties": properties, "required": sorted(required)}
        if not body["required"]:
            del body["required"]
        operation["requestBody"] = {"required": bool(required), "content": {"application/json": {"schema": body}}}
    operation["responses"] = _responses(info, outputs, security)
    if security is not None:
        operation["security"] = [{security.name: []}]
    return operation


def _object(schema: dict[str, Any] | None, schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level object schema, even when pydantic wrote it as a reference (a model that refers to itself)."""
    if schema is None:
        return {}
    if "$ref" in schema and "properties" not in schema:
        return copy.deepcopy(schemas.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}))
    return copy.deepcopy(schema)


def _is_scalar(schema: Mapping[str, Any]) -> bool:
    """Whether a value of ``schema`` can come as text in a query string (a number, a flag, a string, an enum)."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return all(_is_scalar(option) for option in options)
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind) <= _SCALARS
    return kind in _SCALARS or ("enum" in schema and kind is None) or ("const" in schema and kind is None)


def _responses(
    info: ServiceInfo | None, outputs: dict[str, Any] | None, security: SecurityDefinition | None
) -> dict[str, Any]:
    if outputs is not None:
        ok: dict[str, Any] = {
            "description": "The service's Output",
            "content": {"application/json": {"schema": outputs}},
        }
    else:
        ok = {"description": "The service's payload: JSON for a dict or list, text for a str, bytes otherwise"}
    responses: dict[str, Any] = {"200": ok, "204": {"description": "The service answered no payload"}}
    if info is not None and info.input is not None:
        responses["400"] = _error("The input does not match the service's Input; every bad field is named")
    if security is not None:
        responses["401"] = _error(f"Missing or wrong credentials ({security.kind})")
    responses["404"] = _error("The service is not deployed, or it answered 404")
    responses["500"] = _error("The service failed; the answer names the chain of services")
    return responses


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _error_schema() -> dict[str, Any]:
    fields = {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "fields": {
            "type": "array",
            "description": "invalid_input: each bad field, its path in the payload (items[1].qty) and where it was",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "where": {"type": "string"}},
            },
        },
    }
    error = {"type": "object", "required": ["code", "message"], "properties": fields}
    return {"type": "object", "required": ["error", "cid"], "properties": {"error": error, "cid": {"type": "string"}}}


def _scheme(security: SecurityDefinition) -> dict[str, Any]:
    if security.kind == "basic":
        return {"type": "http", "scheme": "basic"}
    return {"type": "apiKey", "in": "header", "name": security.header or "X-API-Key"}
