"""The OpenAPI 3.1 document of the admin API (``GET /splice/admin/openapi.json``), generated from the operations.

Each operation's request body and answers are the JSON schemas of its pydantic models (the same models that check
bodies and serialise answers), each with an example; its error statuses are those it can really answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from .operations import Operation
from .schemas.common import ErrorAnswer

PREFIX = "/splice/admin"
_CONVERTER = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERRORS = {
    400: "The body or a parameter is not valid; `problems` names every bad field",
    401: "No valid `Authorization: Bearer <token>`",
    404: "What the call names does not exist",
    409: "It conflicts with the cluster's state (a name taken, a definition in use, a debugger in the way)",
    413: "The body is too large",
    422: "Well-formed, but refused: the sources, the declaration or the version cannot be used",
    503: "Not now: the broker cannot take it (a subscription full to its topic's max_depth)",
}
_PARAMETERS = {
    "name": {"description": "a name (a channel's, a service's, a job's...)", "example": "get-order"},
    "path": {"description": "a module path relative to the project root", "example": "shop/orders.py"},
}


class _Schemas:
    """Collects the components' schemas of every model, each under its own name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, adapter: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        schema: dict[str, Any] = adapter.json_schema(
            mode=mode, ref_template="#/components/schemas/{model}", schema_generator=GenerateJsonSchema
        )
        self.components.update(schema.pop("$defs", {}))
        return schema


def document(server_url: str, operations: Sequence[Operation]) -> dict[str, Any]:
    schemas = _Schemas()
    error = schemas.of(_adapter(ErrorAnswer), "serialization")
    schemas.components["Error"] = error
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        path = _CONVERTER.sub(r"{\1}", PREFIX + operation.path)
        paths.setdefault(path, {})[operation.method.lower()] = _operation(operation, path, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Splice admin API", "version": "1"},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(schemas.components.items())),
        },
    }


def _adapter(model: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def _operation(operation: Operation, path: str, schemas: _Schemas) -> dict[str, Any]:
    answer = _media(schemas.of(operation.answer_adapter, "serialization"), schemas)
    responses: dict[str, Any] = {
        str(operation.status): {"description": "OK", "content": {operation.media_type: answer}}
    }
    for status in operation.statuses:
        if status != operation.status:
            ref = {"$ref": "#/components/schemas/Error"}
            responses[str(status)] = {"description": _ERRORS[status], "content": {"application/json": {"schema": ref}}}
    out: dict[str, Any] = {
        "operationId": operation.handler.__name__,
        "summary": operation.summary,
        "responses": responses,
    }
    parameters = [_path_parameter(name) for name in re.findall(r"\{(\w+)\}", path)]
    if operation.query is not None:
        parameters += _query_parameters(schemas.of(_adapter(operation.query), "validation"))
    if parameters:
        out["parameters"] = parameters
    if operation.body_adapter is not None:
        body = _media(schemas.of(operation.body_adapter, "validation"), schemas)
        out["requestBody"] = {"required": True, "content": {"application/json": body}}
    return out


def _inline(schema: dict[str, Any], schemas: _Schemas) -> dict[str, Any]:
    """A model's schema as a reference to its component (its title names it), other schemas as they are."""
    title = schema.get("title")
    if isinstance(title, str) and schema.get("type") == "object" and "properties" in schema:
        schemas.components.setdefault(title, schema)
        return {"$ref": f"#/components/schemas/{title}"}
    return schema


def _media(schema: dict[str, Any], schemas: _Schemas) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _inline(schema, schemas)}
    example = _example(schema, schemas)
    if example is not None:
        media["example"] = example
    return media


def _example(schema: dict[str, Any], schemas: _Schemas) -> Any:
    """The schema's first example; a union's is its first member's."""
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("oneOf", ()) if "$ref" in s), None)
    if isinstance(ref, str):
        return _example(schemas.components.get(ref.rsplit("/", 1)[-1], {}), schemas)
    return None


def _path_parameter(name: str) -> dict[str, Any]:
    extra = _PARAMETERS.get(name, {})
    schema = {"type": "string", "minLength": 1}
    return {"name": name, "in": "path", "required": True, "schema": schema, **extra}


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` as what a query string can carry: the parameter is left out, never ``null``.

    A query string has no null, so ``anyOf: [X, null]`` let a fuzzer send a value it meant as neither (an object
    or a list) that serializes to nothing: a request the document called invalid was really a valid one.
    """
    branches = prop.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return prop
    rest = [branch for branch in branches if branch != {"type": "null"}]
    if len(rest) != 1:
        return prop
    out = {key: value for key, value in prop.items() if key not in ("anyOf", "default")}
    return {**out, **rest[0]}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(dict(prop))
        description = prop.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out
