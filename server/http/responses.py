"""Turning payloads and errors into HTTP responses; every response carries ``X-Splice-CID``."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response

from ..core.errors import HTTPError, SpliceError
from ..core.jsonvalues import Unencodable, dumps

__all__ = [
    "CID_HEADER",
    "STATUS_OF_CODE",
    "BadResponse",
    "Unencodable",
    "dumps",
    "encode_payload",
    "error_body",
    "error_headers",
    "error_response",
    "http_status",
    "json_response",
    "payload_json",
]

CID_HEADER = "x-splice-cid"
logger = logging.getLogger(__name__)


class BadResponse(SpliceError):
    """A service answered something its channel cannot send (a value JSON cannot carry, a header HTTP cannot)."""

    code = "bad_response"


def encode_payload(payload: Any, content_type: str | None, service: str = "the service") -> tuple[bytes, str | None]:
    """The body bytes and content type for a service's response payload; ``BadResponse`` if JSON cannot carry it."""
    if payload is None:
        return b"", content_type
    if isinstance(payload, bytes | bytearray):
        return bytes(payload), content_type or "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), content_type or "text/plain; charset=utf-8"
    return payload_json(payload, service), content_type or "application/json"


def payload_json(payload: Any, service: str) -> bytes:
    """A service's payload as JSON (``core.jsonvalues.dumps``), or ``BadResponse`` naming the service, the place
    and why."""
    try:
        return dumps(payload)
    except Unencodable as exc:
        raise BadResponse(f"service '{service}' answered {exc}") from None


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
    "bad_response": 500,
    "odb_unavailable": 503,
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


def error_headers(exc: SpliceError) -> list[tuple[bytes, bytes]]:
    """What an error adds to its answer's headers (``Retry-After`` of an overloaded server), as ASGI pairs."""
    extra: dict[str, str] = getattr(exc, "headers", None) or {}
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]


def error_response(exc: SpliceError, cid: str) -> Response:
    body = dumps({"error": exc.as_dict(), "cid": cid})
    headers = {CID_HEADER: cid, **(getattr(exc, "headers", None) or {})}
    return Response(body, status_code=http_status(exc), media_type="application/json", headers=headers)


def json_response(value: Any, cid: str, status: int = 200) -> Response:
    try:
        body = dumps(value)
    except Unencodable as exc:  # Splice's own answer: a bug, still answered as JSON with the cid
        logger.error("an answer JSON cannot carry: %s", exc)
        body, status = error_body(500, "bad_response", f"the answer holds {exc}", cid), 500
    return Response(body, status_code=status, media_type="application/json", headers={CID_HEADER: cid})
