"""Turning payloads and errors into HTTP responses; every response carries ``X-Splice-CID``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from ..core.errors import HTTPError, SpliceError

CID_HEADER = "x-splice-cid"


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def encode_payload(payload: Any, content_type: str | None) -> tuple[bytes, str | None]:
    """The body bytes and content type for a service's response payload."""
    if payload is None:
        return b"", content_type
    if isinstance(payload, bytes | bytearray):
        return bytes(payload), content_type or "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), content_type or "text/plain; charset=utf-8"
    return dumps(payload), content_type or "application/json"


def error_body(status: int, code: str, message: str, cid: str, **extra: Any) -> bytes:
    return dumps({"error": {"code": code, "message": message, **extra}, "cid": cid})


STATUS_OF_CODE: dict[str, int] = {
    "bad_request": 400,
    "invalid_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "service_not_found": 404,
    "conflict": 409,
    "debug_refused": 409,
    "too_large": 413,
    "deploy_failed": 422,
    "rollback_refused": 422,
    "invalid_declaration": 422,
    "invalid_connection": 422,
    "editor_file_invalid": 422,
    "invalid_definition": 422,
    "pubsub_unavailable": 503,
    "cache_error": 422,
    "timeout": 504,
    "overloaded": 503,
}
"""The HTTP status of each domain error, by its ``code``; a code not here (nor any of its base classes') is a 500."""


def http_status(exc: SpliceError) -> int:
    """The status an error answers with: a service's own ``HTTPError``, else the table (walking base classes)."""
    if isinstance(exc, HTTPError):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS_OF_CODE.get(getattr(cls, "code", ""))
        if status is not None:
            return status
    return 500


def error_response(exc: SpliceError, cid: str) -> Response:
    body = dumps({"error": exc.as_dict(), "cid": cid})
    return Response(body, status_code=http_status(exc), media_type="application/json", headers={CID_HEADER: cid})


def json_response(value: Any, cid: str, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json", headers={CID_HEADER: cid})
