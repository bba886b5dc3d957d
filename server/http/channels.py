"""REST channels: a raw ASGI app that routes a request to its channel's service.

Kept free of per-request framework objects: this is the hot path the REST benchmark measures.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope, Send

from ..channels.routing import NotAllowed
from ..core.context import current_cid, new_cid
from ..core.errors import BadRequest, SpliceError, TooLarge
from ..core.service import Request
from ._paths import authorized, challenge
from .responses import CID_HEADER, BadResponse, dumps, encode_payload, error_body, error_headers, http_status

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
MAX_BODY = 16 * 1024 * 1024
MAX_DRAIN = 256 * 1024 * 1024
"""The most bytes of a refused body read (and dropped) so that the 413 reaches the client: see ``_drain``."""
_JSON = b"application/json"
_CID = CID_HEADER.encode()


class ChannelApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cid = new_cid()
        token = current_cid.set(cid)
        try:
            await self._dispatch(scope, receive, send, cid)
        finally:
            current_cid.reset(token)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, cid: str) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        found = self.runtime.router.match(method, path)
        if found is None:
            body = error_body(404, "not_found", f"no channel for {method} {path}", cid)
            return await _send(send, 404, body, b"application/json", cid)
        if isinstance(found, NotAllowed):
            allow = ", ".join(sorted(found.allowed))
            body = error_body(405, "method_not_allowed", f"{method} is not allowed on {path} (allowed: {allow})", cid)
            return await _send(send, 405, body, b"application/json", cid, [(b"allow", allow.encode())])
        route = found.route
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not authorized(self.runtime, route.security, headers):
            body = error_body(401, "unauthorized", f"channel '{route.name}' needs valid credentials", cid)
            return await _send(send, 401, body, b"application/json", cid, challenge(self.runtime, route.security))
        try:
            payload = _parse(await _read_body(receive), headers.get("content-type", ""))
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
            request = Request(payload, method=method, path=path, path_params=found.params, query=query, headers=headers)
            request.channel = route.name
            response = await self.runtime.invoker.call(route.service, request=request, cid=cid)
        except SpliceError as exc:
            body = dumps({"error": exc.as_dict(), "cid": cid})
            return await _send(send, http_status(exc), body, b"application/json", cid, error_headers(exc))
        try:
            body, content_type = encode_payload(response.payload, response.content_type, route.service)
        except BadResponse as exc:
            logger.error("%s", exc)
            return await _send(send, 500, dumps({"error": exc.as_dict(), "cid": cid}), b"application/json", cid)
        status = response.status or (200 if body or response.payload is not None else 204)
        try:
            extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
            kind = content_type.encode("latin-1") if content_type else None
        except UnicodeEncodeError as exc:
            message = f"service '{route.service}' set a response header that HTTP cannot carry ({exc.object!r})"
            return await _send(send, 500, error_body(500, "bad_response", message, cid), b"application/json", cid)
        await _send(send, status, body, kind, cid, extra, head=method == "HEAD")


async def _read_body(receive: Receive) -> bytes:
    """The request body; ``TooLarge`` past ``MAX_BODY``, once the rest is read and dropped (``_drain``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY:
                if message.get("more_body", False):
                    await _drain(receive, size)
                raise TooLarge(f"the request body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Receive, size: int) -> None:
    """Read and drop what is left of a refused body, up to ``MAX_DRAIN`` bytes in all.

    Hypercorn closes the connection as soon as the answer is sent; with request bytes still unread, the kernel
    then resets it, and a proxy in between (HAProxy) may lose the 413 and give its client a broken pipe. Read
    to the end, the 413 arrives whole. A body larger still is answered and cut off (HAProxy refuses one whose
    ``Content-Length`` is past the largest limit itself: ``cli/_haproxy.py``).
    """
    while size <= MAX_DRAIN:
        message: Message = await receive()
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _parse(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json") or (not kind and body[:1] in (b"{", b"[")):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if kind.startswith("text/") or kind in ("application/x-www-form-urlencoded", "application/xml"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the text body is not valid UTF-8") from None
    return body


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes | None,
    cid: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
) -> None:
    """Answer; for HEAD, the headers (content-length included) are those of GET, without the body."""
    headers = [(b"content-length", b"%d" % len(body)), (_CID, cid.encode())]
    if content_type:
        headers.append((b"content-type", content_type))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
