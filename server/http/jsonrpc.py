"""JSON-RPC 2.0 channels over HTTP (https://www.jsonrpc.org/specification): POST a call, get its answer.

A call ``{"jsonrpc": "2.0", "method": "<service name>", "params": {...}, "id": 1}`` invokes the service with
``params`` as its payload (an array is passed as a list; no ``params``, ``None``) and answers
``{"jsonrpc": "2.0", "result": <response payload>, "id": 1}``. A call without ``id`` is a notification: it runs,
and gets no answer. A batch (an array of calls) runs its calls concurrently, at most the channel's
``max_batch`` of them, and answers an array in the calls' order, leaving notifications out.

Errors, as the specification numbers them: -32700 the body is not JSON; -32600 not a valid call (an empty
batch, a batch larger than ``max_batch``); -32601 no such service, or one the channel's ``services`` patterns
(``fnmatch``, case-sensitive) do not allow, with the same answer either way so that nothing tells which
services exist; -32602 the service's declared input was not met (``data.fields`` lists the problems);
-32000 the service failed (``data``: ``code``, ``message``, ``cid``; never a traceback), or answered what JSON
cannot carry (``code`` ``bad_response``, the message naming where and why: ``core/jsonvalues.py``); -32603 Splice
itself failed. Every ``data`` carries the call's ``cid``, the key to its log lines.

HTTP: 200 for every JSON-RPC answer, 204 when a request held only notifications; what is no JSON-RPC answer
is REST's: 401 when the channel's security refuses the credentials, 405 for a method other than POST, 413 for
a body over REST's limit (``channels.MAX_BODY``). A JSON-RPC channel owns its path: a REST channel at the same
path is not reached.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from ..core.context import current_cid, new_cid
from ..core.errors import HTTPError, InvalidInput, ServiceNotFound, SpliceError, TooLarge
from ..core.jsonvalues import Unencodable
from ..core.service import Request
from ._paths import PathTable, authorized, challenge
from .channels import _read_body
from .responses import CID_HEADER, dumps, error_body

if TYPE_CHECKING:
    from ..channels.specs import JsonRpcChannel
    from ..runtime import Runtime

logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000

_NO_ID = object()


def allowed(method: str, patterns: list[str]) -> bool:
    """Whether a channel's ``services`` patterns let ``method`` be called."""
    return any(fnmatch.fnmatchcase(method, pattern) for pattern in patterns)


def error(id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        out["data"] = data
    return {"jsonrpc": "2.0", "error": out, "id": id}


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


class JsonRpcApp:
    """Answers POSTs to JSON-RPC channels."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.table: PathTable[JsonRpcChannel] = PathTable(runtime.live, "jsonrpc")

    def match(self, path: str) -> tuple[JsonRpcChannel, dict[str, str]] | None:
        return self.table.match(path)

    async def serve(
        self, found: tuple[JsonRpcChannel, dict[str, str]], scope: Scope, receive: Receive, send: Send
    ) -> None:
        cid = new_cid()
        token = current_cid.set(cid)
        try:
            await self._serve(found, scope, receive, send, cid)
        finally:
            current_cid.reset(token)

    async def _serve(
        self, found: tuple[JsonRpcChannel, dict[str, str]], scope: Scope, receive: Receive, send: Send, cid: str
    ) -> None:
        spec, params = found
        path: str = scope["path"]
        if scope["method"] != "POST":
            message = f"{scope['method']} is not allowed on {path}: JSON-RPC channel '{spec.name}' takes POST"
            body = error_body(405, "method_not_allowed", message, cid)
            return await _send(send, 405, body, cid, [(b"allow", b"POST")])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not authorized(self.runtime, spec.security, headers):
            body = error_body(401, "unauthorized", f"channel '{spec.name}' needs valid credentials", cid)
            return await _send(send, 401, body, cid, challenge(self.runtime, spec.security))
        try:
            raw = await _read_body(receive)
        except TooLarge as exc:
            return await _send(send, 413, error_body(413, exc.code, str(exc), cid), cid)
        answer = await self._answer(
            spec, raw, Request(None, method="POST", path=path, path_params=params, headers=headers), cid
        )
        if answer is None:
            return await _send(send, 204, b"", cid)
        await _send(send, 200, dumps(answer), cid)

    async def _answer(self, spec: JsonRpcChannel, raw: bytes, http: Request, cid: str) -> Any:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            return error(None, PARSE_ERROR, "Parse error", {"message": f"the body is not valid JSON: {exc}"})
        if not isinstance(value, list):
            return await self._call(spec, value, http, cid)
        if not value:
            return error(None, INVALID_REQUEST, "Invalid Request", {"message": "an empty batch"})
        if len(value) > spec.max_batch:
            message = f"{len(value)} calls in one batch; channel '{spec.name}' takes at most {spec.max_batch}"
            return error(None, INVALID_REQUEST, "batch too large", {"message": message})
        answers = await asyncio.gather(*(self._call(spec, item, http, new_cid()) for item in value))
        return [answer for answer in answers if answer is not None] or None

    async def _call(self, spec: JsonRpcChannel, call: Any, http: Request, cid: str) -> dict[str, Any] | None:
        """One call's answer, or ``None`` for a notification."""
        problem = _invalid(call)
        if problem is not None:
            id = call.get("id") if isinstance(call, dict) and _valid_id(call.get("id")) else None
            return error(id, INVALID_REQUEST, "Invalid Request", {"message": problem})
        id = call.get("id", _NO_ID)
        answer = await self._run(spec, call["method"], call.get("params"), http, cid)
        if id is _NO_ID:
            if "error" in answer:
                logger.info("notification %s failed: %s", call["method"], answer["error"].get("data"))
            return None
        return {"jsonrpc": "2.0", **answer, "id": id}

    async def _run(self, spec: JsonRpcChannel, method: str, params: Any, http: Request, cid: str) -> dict[str, Any]:
        """``{"result": ...}`` or ``{"error": ...}``."""
        not_found = _failure(METHOD_NOT_FOUND, "Method not found", cid=cid)
        if not allowed(method, spec.services) or self.runtime.store.get(method) is None:
            return not_found
        request = Request(
            params, method=http.method, path=http.path, path_params=http.path_params, headers=http.headers
        )
        request.channel = spec.name
        try:
            response = await self.runtime.invoker.call(method, request=request, cid=cid)
        except InvalidInput as exc:
            fields = [p.as_dict() for p in exc.problems]
            return _failure(INVALID_PARAMS, "Invalid params", message=str(exc), fields=fields, cid=cid)
        except ServiceNotFound:  # undeployed since the check above
            return not_found
        except SpliceError as exc:
            status = {"status": exc.status} if isinstance(exc, HTTPError) else {}
            return _failure(SERVER_ERROR, "Server error", code=exc.code, message=str(exc), cid=cid, **status)
        except Exception:
            logger.exception("JSON-RPC call of %s failed inside Splice", method)
            return _failure(INTERNAL_ERROR, "Internal error", cid=cid)
        if isinstance(response.payload, bytes | bytearray):
            message = f"service '{method}' answered bytes, which a JSON-RPC result cannot carry"
            return _failure(SERVER_ERROR, "Server error", code="bad_response", message=message, cid=cid)
        try:
            dumps(response.payload)  # encoded twice, to answer this call alone with the error, not the whole batch
        except Unencodable as exc:
            message = f"service '{method}' answered {exc}"
            logger.error("%s", message)
            return _failure(SERVER_ERROR, "Server error", code="bad_response", message=message, cid=cid)
        return {"result": response.payload}


def _failure(number: int, title: str, /, **data: Any) -> dict[str, Any]:
    return {"error": {"code": number, "message": title, "data": data}}


def _invalid(call: Any) -> str | None:
    """What makes ``call`` no valid JSON-RPC 2.0 request object, or ``None``."""
    if not isinstance(call, dict):
        return f"a call must be an object, not {type(call).__name__}"
    if call.get("jsonrpc") != "2.0":
        return 'a call must have "jsonrpc": "2.0"'
    if not isinstance(call.get("method"), str):
        return 'a call must have "method": the name of a service'
    if "params" in call and not isinstance(call["params"], dict | list):
        return '"params" must be an object or an array'
    if "id" in call and not _valid_id(call["id"]):
        return '"id" must be a string, a number or null'
    return None


async def _send(send: Send, status: int, body: bytes, cid: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (CID_HEADER.encode(), cid.encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
