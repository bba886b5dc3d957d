"""The OpenAPI 3.1 document of the admin API (``GET /splice/admin/openapi.json``)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_OBJECT = {"type": "object"}


def _op(
    summary: str, body: dict[str, Any] | None = None, ok: int = 200, errors: tuple[int, ...] = ()
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": "OK", "content": {"application/json": {"schema": _OBJECT}}}}
    for status in (401, *errors):
        responses[str(status)] = {"description": "Error", "content": {"application/json": {"schema": _ERROR}}}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_STR = {"type": "string"}
_NUM = {"type": "number"}
_INT = {"type": "integer"}
_PATH_PARAM = [{"name": "path", "in": "path", "required": True, "schema": _STR}]
_NAME_PARAM = [{"name": "name", "in": "path", "required": True, "schema": _STR}]


def document(server_url: str) -> dict[str, Any]:
    module = _obj(["path", "source"], path={**_STR, "description": "relative to the project root"}, source=_STR)
    deploy_body = _obj(["modules"], modules={"type": "array", "items": module, "minItems": 1}, deployed_by=_STR)
    channel = _obj(
        ["name", "path", "service"],
        name=_STR,
        path={**_STR, "example": "/orders/{id}"},
        service=_STR,
        methods={"type": "array", "items": _STR},
        security=_STR,
    )
    security = _obj(
        ["name", "kind"],
        name=_STR,
        kind={"enum": ["basic", "apikey"]},
        username=_STR,
        password=_STR,
        key=_STR,
        header=_STR,
    )
    a = "/splice/admin"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Splice admin API", "version": "1"},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": {
            f"{a}/server": {"get": _op("This server: name, cluster, pid, counts")},
            f"{a}/deploy": {"post": _op("Deploy modules together, all or nothing", deploy_body, errors=(400, 422))},
            f"{a}/undeploy": {
                "post": _op(
                    "Remove modules and their services",
                    _obj(["paths"], paths={"type": "array", "items": _STR}),
                    errors=(404, 422),
                )
            },
            f"{a}/modules": {"get": _op("Deployed modules with versions and services")},
            f"{a}/modules/{{path}}/history": {
                "get": {**_op("Every version of a module", errors=(404,)), "parameters": _PATH_PARAM}
            },
            f"{a}/services": {"get": _op("Deployed services with their declared fields")},
            f"{a}/services/{{name}}": {"get": {**_op("One service", errors=(404,)), "parameters": _NAME_PARAM}},
            f"{a}/invoke": {
                "post": _op("Invoke a service", _obj(["service"], service=_STR, payload={}), errors=(400, 404, 500))
            },
            f"{a}/channels": {
                "get": _op("REST channels"),
                "post": _op("Create a REST channel", channel, ok=201, errors=(400, 404, 409)),
            },
            f"{a}/channels/{{name}}": {"delete": {**_op("Delete a channel", errors=(404,)), "parameters": _NAME_PARAM}},
            f"{a}/security": {
                "get": _op("Security definitions (secrets are never shown)"),
                "post": _op("Create a security definition", security, ok=201, errors=(400, 409)),
            },
            f"{a}/security/{{name}}": {
                "delete": {**_op("Delete a security definition", errors=(404, 409)), "parameters": _NAME_PARAM}
            },
            f"{a}/rollback": {
                "post": _op(
                    "Deploy a stored version of a module again, as a new version, on every server",
                    _obj(["path", "version"], path=_STR, version={"type": "integer", "minimum": 1}, deployed_by=_STR),
                    errors=(400, 404, 422),
                )
            },
            f"{a}/apply": {
                "post": _op(
                    "Apply a declaration file (channels, security definitions); secrets by variable name",
                    _obj(
                        ["text"],
                        text={**_STR, "description": "the TOML file's contents"},
                        file={**_STR, "description": "its name, for messages"},
                        secrets={"type": "object", "additionalProperties": _STR},
                        prune={"type": "boolean"},
                        dry_run={"type": "boolean"},
                        applied_by=_STR,
                    ),
                    errors=(400, 409, 422),
                )
            },
            **_job_paths(a),
            f"{a}/openapi.json": {"get": _op("This document")},
            f"{a}/cluster": {"get": _op("The cluster's servers: live or not, the sequence each applied")},
            f"{a}/pickup": {"get": _op("Pickup directories: which server acts on each, and its last batch")},
            f"{a}/debug": {
                "get": _op("This server's debugging: its attach point (server, pid, host, port, remote_root)"),
                "post": _op(
                    "Listen with debugpy ({enabled: true}), or stop debugging ({enabled: false}: a server that "
                    "listened restarts in place without debugpy)",
                    _obj(["enabled"], enabled={"type": "boolean"}, host=_STR),
                    errors=(400, 409),
                ),
            },
            f"{a}/debug/pycharm": {
                "post": _op(
                    "Connect to PyCharm's debug server ({host, port}), or disconnect ({connect: false})",
                    _obj([], host=_STR, port=_INT, connect={"type": "boolean"}),
                    errors=(400, 409),
                )
            },
            f"{a}/cluster/sync": {
                "post": _op(
                    "Sync this server with the ODB now (how servers notify each other without Redis)",
                    _obj(["sequence"], sequence={"type": "integer"}, origin=_STR),
                    errors=(400,),
                )
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _obj(
                    ["error", "cid"],
                    error=_obj(["code", "message"], code=_STR, message=_STR),
                    cid=_STR,
                )
            },
        },
    }


def _job_paths(a: str) -> dict[str, Any]:
    interval = {
        "oneOf": [
            {"type": "number", "description": "seconds"},
            _obj([], weeks=_NUM, days=_NUM, hours=_NUM, minutes=_NUM, seconds=_NUM),
        ]
    }
    job = _obj(
        ["name", "service"],
        name=_STR,
        service=_STR,
        payload={"description": "any JSON, the service's request payload"},
        interval=interval,
        start={**_STR, "format": "date-time", "description": "interval jobs: the first run (default: one period on)"},
        repeats={"type": "integer", "minimum": 1, "description": "interval jobs: how many runs in all"},
        cron={**_STR, "example": "*/5 * * * *"},
        timezone={**_STR, "example": "Europe/Berlin", "description": "cron jobs (default UTC)"},
        at={**_STR, "format": "date-time", "description": "one run at this moment"},
        misfire={"enum": ["run_once", "skip"]},
        retries={"type": "integer", "minimum": 0},
        backoff={"type": "number", "description": "seconds before the first retry; doubles each time"},
        paused={"type": "boolean"},
        replace={"type": "boolean", "description": "create: change the job of this name if one exists"},
    )
    job["properties"]["in"] = {"type": "number", "description": "one run in this many seconds"}
    named = {"parameters": _NAME_PARAM}
    run = _obj(
        ["job_id", "slot_us", "job", "service", "cid"], job_id=_INT, slot_us=_INT, job=_STR, service=_STR, cid=_STR
    )
    return {
        f"{a}/jobs": {
            "get": _op("Scheduled jobs, and which scheduler is active"),
            "post": _op("Create a job (interval, cron or one-time)", job, ok=201, errors=(400, 409)),
        },
        f"{a}/jobs/{{name}}": {
            "get": {**_op("One job", errors=(404,)), **named},
            "patch": {**_op("Change a job: the fields given", _OBJECT, errors=(400, 404)), **named},
            "delete": {**_op("Delete a job and its run history", errors=(404,)), **named},
        },
        f"{a}/jobs/{{name}}/pause": {"post": {**_op("Pause a job", errors=(404,)), **named}},
        f"{a}/jobs/{{name}}/resume": {
            "post": {**_op("Resume a job from now on (slots passed while paused are not run)", errors=(404,)), **named}
        },
        f"{a}/jobs/{{name}}/run-now": {
            "post": {**_op("Run a job once now, besides its schedule", errors=(404,)), **named}
        },
        f"{a}/jobs/{{name}}/history": {
            "get": {
                **_op("A job's runs, newest first: slot, status, server, error, lateness", errors=(400, 404)),
                "parameters": [*_NAME_PARAM, {"name": "limit", "in": "query", "schema": _INT}],
            }
        },
        f"{a}/scheduler/dispatch": {
            "post": {
                **_op(
                    "The scheduler's batch of runs: starts them all, streams one JSON line per outcome",
                    _obj(["runs"], runs={"type": "array", "items": run}, scheduler=_STR),
                    errors=(400,),
                ),
                "responses": {
                    "200": {"description": "OK", "content": {"application/x-ndjson": {"schema": _OBJECT}}},
                    "400": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
                    "401": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
                },
            }
        },
    }
