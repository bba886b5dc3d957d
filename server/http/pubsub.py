"""Pub/sub for clients over REST, under ``/splice/pubsub``: publish, subscribe, pull, acknowledge.

- ``POST /splice/pubsub/topics/{topic}`` publishes the body: JSON (``Content-Type: application/json``) as its
  value, any other body as bytes. Optional headers: ``X-Splice-Key`` (idempotency: a repeat within the topic's
  window answers 200 with ``duplicate`` true and is not enqueued again), ``X-Splice-Priority`` (an integer,
  higher first), ``X-Splice-Expiry`` (seconds), and ``X-Splice-Header-<name>`` for each message header. Answers
  201 with what the broker did (``id``, ``subscriptions``, ...). The body is read up to the topic's
  ``max_payload`` and refused (413) as soon as it goes past, never read whole first.
- ``GET /splice/pubsub/subscriptions``: the pull subscriptions the caller may read.
- ``POST /splice/pubsub/subscriptions`` ``{"name", "topic"}`` (and optionally ``ordered``, ``delivery_limit``,
  ``backoff``, ``max_backoff``, ``lease``) makes a pull subscription owned by the caller's security definition;
  201, or 200 when it already had it. ``DELETE /splice/pubsub/subscriptions/{name}`` removes one it owns.
- ``GET /splice/pubsub/subscriptions/{name}/messages?limit=10&wait=20`` claims up to ``limit`` messages,
  waiting up to ``wait`` seconds for the first (long poll): ``{"messages": [...]}``. Each must be acknowledged
  (``POST .../ack {"ids": [...]}``) within the subscription's ``lease``, else it is delivered again;
  ``POST .../nack {"ids": [...], "error": "..."}`` gives messages back to be retried after the backoff.

Every endpoint needs the credentials of one of the cluster's security definitions (none or wrong: 401), and what
it does is checked against that definition's topic permissions (``[[topic_permissions]]``): refused, 403 says
what the definition may do. A subscription made here is read (and deleted) only by the definition that made it;
one the administrators made is read by any definition allowed to subscribe to its topic. Errors answer
``{"error": {"code", "message"}, "cid"}`` like the rest of Splice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.context import current_cid
from ..core.errors import BadRequest, Conflict, Forbidden, NotFound, SpliceError, TooLarge
from ..core.naming import closest
from ..core.pubsub import UnknownTopic
from ..core.validation import problems
from ..pubsub.broker import MAX_PULL, MAX_WAIT
from ..pubsub.names import check_topic, is_pattern
from ..pubsub.specs import SubscriptionSpec, TopicSpec
from ._paths import challenge
from .admin_pubsub import InvalidDefinition
from .operations import AdminRoute, InvalidBody
from .responses import CID_HEADER, error_body, error_response, json_response

if TYPE_CHECKING:
    from ..runtime import Runtime

PREFIX = "/splice/pubsub"
MAX_BODY = 1024 * 1024
"""The largest JSON body of a subscribe, ack or nack."""
MAX_IDS = 1000
"""The most deliveries one ack or nack names."""
MAX_HEADERS = 50
"""The most message headers (``X-Splice-Header-*``) one publish sets."""
HEADER_PREFIX = "x-splice-header-"
_LISTED = 30
_OPTIONS = ("ordered", "delivery_limit", "backoff", "max_backoff", "lease")
"""What a client may set of a subscription besides its name and topic."""


class Access:
    """Who a caller is (the security definition its credentials match) and what its topic permissions let it do."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._known: dict[str, str] = {}
        """Digests of credentials seen -> the definition they matched: a caller is then checked against that one
        definition (a remembered, cheap check) rather than against every definition's slow scrypt hash."""

    def identify(self, headers: Mapping[str, str]) -> str | None:
        """The name of the security definition whose credentials ``headers`` carry, or ``None``."""
        securities, verifier = self.runtime.securities, self.runtime.verifier
        digest = self._digest(headers)
        name = self._known.get(digest)
        if name is not None:
            definition = securities.get(name)
            if definition is not None and verifier.check(definition, headers):
                return name
        for name, definition in sorted(securities.items()):
            if verifier.check(definition, headers):
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[digest] = name
                return name
        return None

    def _digest(self, headers: Mapping[str, str]) -> str:
        presented = [headers.get("authorization", ""), *(headers.get(key, "") for key in self.key_headers())]
        return hashlib.sha256("\0".join(presented).encode()).hexdigest()

    def key_headers(self) -> list[str]:
        """The (lower-case) headers the cluster's API-key definitions read."""
        found = {(d.header or "x-api-key").lower() for d in self.runtime.securities.values() if d.kind == "apikey"}
        return sorted(found)

    def unauthorized(self) -> tuple[str, list[tuple[bytes, bytes]]]:
        """The message of a 401 and its ``WWW-Authenticate`` header (Basic, if the cluster has a Basic definition)."""
        securities = self.runtime.securities
        if not securities:
            message = (
                "the pub/sub endpoints need the credentials of one of the cluster's security definitions, and the "
                "cluster has none: create one (splice security create ..., or [[security]] in splice.toml)"
            )
        else:
            message = "the pub/sub endpoints need valid credentials of one of the cluster's security definitions"
        basic = next((name for name, d in sorted(securities.items()) if d.kind == "basic"), None)
        return message, challenge(self.runtime, basic)

    def granted(self, security: str, action: str) -> list[str]:
        permission = self.runtime.live.permissions.get(security)
        if permission is None:
            return []
        return list(permission.publish if action == "publish" else permission.subscribe)

    def may(self, security: str, action: str, topic: str) -> bool:
        permission = self.runtime.live.permissions.get(security)
        return permission is not None and permission.may(action, topic)

    def refusal(self, security: str, action: str, topic: str) -> Forbidden:
        granted = self.granted(security, action)
        may = f"it may {action} to: {_listed(granted)}" if granted else f"it may {action} to no topic"
        return Forbidden(f"security definition '{security}' may not {action} to '{topic}'; {may}")

    def topic_to_publish(self, security: str, topic: str) -> TopicSpec:
        """The topic ``security`` publishes to: ``BadRequest`` (no topic name), ``Forbidden``, ``UnknownTopic``."""
        problem = check_topic(topic)
        if problem is not None:
            raise BadRequest(f"topic: {problem}")
        if not self.may(security, "publish", topic):
            raise self.refusal(security, "publish", topic)
        spec = self.runtime.live.topics.get(topic)
        if spec is None:
            visible = sorted(t for t in self.runtime.live.topics if self.may(security, "publish", t))
            raise UnknownTopic(_unknown("topic", topic, visible, f"topics '{security}' may publish to"))
        return spec

    def readable(self, security: str, subscription: SubscriptionSpec) -> bool:
        """Whether ``security`` may read ``subscription``: a pull subscription of a topic it may subscribe to, that
        it made itself or that the administrators made."""
        return (
            subscription.service is None
            and subscription.security in (None, security)
            and self.may(security, "subscribe", subscription.topic)
        )

    def subscription_to_read(self, security: str, name: str) -> SubscriptionSpec:
        """The pull subscription ``name`` for ``security`` to read: ``NotFound``, ``Conflict`` (a push
        subscription), ``Forbidden`` (another's, or of a topic it may not subscribe to)."""
        spec = self.runtime.live.subscriptions.get(name)
        if spec is None:
            raise self.unknown_subscription(security, name)
        if spec.service is not None:
            raise Conflict(
                f"subscription '{name}' delivers to service '{spec.service}' (a push subscription); only pull "
                "subscriptions (without a service) are read over REST or WebSocket"
            )
        if spec.security not in (None, security):
            raise Forbidden(
                f"subscription '{name}' was made by another security definition, and only that one may read it"
            )
        if not self.may(security, "subscribe", spec.topic):
            granted = self.granted(security, "subscribe")
            may = f"it may subscribe to: {_listed(granted)}" if granted else "it may subscribe to no topic"
            raise Forbidden(
                f"security definition '{security}' may not read subscription '{name}' of topic '{spec.topic}': "
                f"it may not subscribe to '{spec.topic}'; {may}"
            )
        return spec

    def visible_subscriptions(self, security: str) -> list[SubscriptionSpec]:
        subscriptions = self.runtime.live.subscriptions
        return [subscriptions[n] for n in sorted(subscriptions) if self.readable(security, subscriptions[n])]

    def unknown_subscription(self, security: str, name: str) -> NotFound:
        visible = [s.name for s in self.visible_subscriptions(security)]
        return NotFound(_unknown("subscription", name, visible, f"subscriptions '{security}' may read"))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _unknown(what: str, name: str, visible: list[str], whose: str) -> str:
    hint = closest(name, visible)
    message = f"no {what} named '{name}'" + (f" (did you mean '{hint}'?)" if hint else "")
    return message + (f"; {whose}: {_listed(visible)}" if visible else f"; there are no {whose}")


Handler = Callable[[Request, str], Awaitable[tuple[int, Any]]]


class PubSubRest:
    """The REST endpoints; each handler takes the request and the caller's security definition."""

    def __init__(self, runtime: Runtime, access: Access) -> None:
        self.runtime = runtime
        self.access = access

    def routes(self) -> list[Route]:
        subscription = PREFIX + "/subscriptions/{name:path}"
        table: list[tuple[str, str, Handler]] = [
            ("POST", PREFIX + "/topics/{topic}", self.publish),
            ("GET", PREFIX + "/subscriptions", self.list_subscriptions),
            ("POST", PREFIX + "/subscriptions", self.subscribe),
            ("GET", subscription + "/messages", self.pull),
            ("POST", subscription + "/ack", self.ack),
            ("POST", subscription + "/nack", self.nack),
            ("DELETE", subscription, self.unsubscribe),
        ]
        by_path: dict[str, dict[str, Handler]] = {}
        for method, path, handler in table:
            by_path.setdefault(path, {})[method] = handler
        return [AdminRoute(path, self._endpoint(methods), methods=list(methods)) for path, methods in by_path.items()]

    def _endpoint(self, methods: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            cid = current_cid.get()
            if request.method not in methods:  # HEAD: a pull's answer without its body would lose what it claimed
                allow = ", ".join(sorted(methods))
                message = f"{request.method} is not allowed on {request.url.path} (allowed: {allow})"
                body = error_body(405, "method_not_allowed", message, cid)
                headers = {"allow": allow, CID_HEADER: cid}
                return Response(body, 405, media_type="application/json", headers=headers)
            caller = self.access.identify(request.headers)
            if caller is None:
                message, extra = self.access.unauthorized()
                headers = {CID_HEADER: cid, **{k.decode(): v.decode() for k, v in extra}}
                body = error_body(401, "unauthorized", message, cid)
                return Response(body, 401, media_type="application/json", headers=headers)
            try:
                status, answer = await methods[request.method](request, caller)
            except SpliceError as exc:
                response = error_response(exc, cid)
                if isinstance(exc, TooLarge):
                    response.headers["connection"] = "close"  # the rest of the body is not read
                return response
            return json_response(answer, cid, status)

        return run

    async def publish(self, request: Request, caller: str) -> tuple[int, Any]:
        topic = self.access.topic_to_publish(caller, request.path_params["topic"])
        options = _publish_options(request.headers)
        raw = await _read(request, topic.max_payload, f"a message for topic '{topic.name}'", "max_payload")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data: Any = raw
        if kind == "application/json" or kind.endswith("+json"):
            data = _json(raw)
        result = await self.runtime.broker.publish(
            topic.name, data, **options, publisher=f"rest:{caller}", cid=current_cid.get()
        )
        return (200 if result.duplicate else 201), result.as_json()

    async def list_subscriptions(self, request: Request, caller: str) -> tuple[int, Any]:
        _no_query(request)
        shown = [_shown(s) for s in self.access.visible_subscriptions(caller)]
        return 200, {"subscriptions": shown}

    async def subscribe(self, request: Request, caller: str) -> tuple[int, Any]:
        body = _object(await _read(request, MAX_BODY, "the body", "limit"))
        spec = _subscription(body, caller)
        if not self.access.may(caller, "subscribe", spec.topic):
            raise self.access.refusal(caller, "subscribe", spec.topic)
        self._check_topic(caller, spec.topic)
        existing = await self._stored(spec.name)
        if existing is not None:
            return 200, await self._again(existing, spec, caller)
        created = await self.runtime.repository.put_subscription(spec.model_dump(mode="json"))
        servers = await self.runtime.config_changed(f"subscription:{spec.name}", by=f"pubsub:{caller}")
        return 201, {"subscription": _shown(spec), "created": created, "servers": servers}

    def _check_topic(self, caller: str, topic: str) -> None:
        """A plain topic (not a pattern) must exist and be persistent: a pull subscription stores its messages."""
        if is_pattern(topic):
            return
        spec = self.runtime.live.topics.get(topic)
        if spec is None:
            visible = sorted(t for t in self.runtime.live.topics if self.access.may(caller, "subscribe", t))
            raise UnknownTopic(_unknown("topic", topic, visible, f"topics '{caller}' may subscribe to"))
        if not spec.persistent:
            raise InvalidDefinition(
                f"topic '{topic}' is not persistent: its messages go only to push subscriptions (services), so a "
                "pull subscription of it would never hold one"
            )

    async def _stored(self, name: str) -> SubscriptionSpec | None:
        try:
            row = await self.runtime.repository.get_subscription(name)
        except NotFound:
            return None
        return SubscriptionSpec.model_validate(row, strict=False)

    async def _again(self, existing: SubscriptionSpec, spec: SubscriptionSpec, caller: str) -> dict[str, Any]:
        """A subscribe to a name that exists: the same owner and topic keep it (with the options asked for)."""
        if existing.security != caller:
            raise Conflict(f"subscription '{spec.name}' already exists (made by someone else): choose another name")
        if existing.topic != spec.topic:
            raise Conflict(
                f"subscription '{spec.name}' already exists for topic '{existing.topic}', not '{spec.topic}': "
                "unsubscribe first to change its topic"
            )
        servers: list[Any] = []
        if existing != spec:
            await self.runtime.repository.put_subscription(spec.model_dump(mode="json"), replace=True)
            servers = await self.runtime.config_changed(f"subscription:{spec.name}", by=f"pubsub:{caller}")
        return {"subscription": _shown(spec), "created": False, "servers": servers}

    async def unsubscribe(self, request: Request, caller: str) -> tuple[int, Any]:
        name = request.path_params["name"]
        existing = await self._stored(name)
        if existing is None:
            raise self.access.unknown_subscription(caller, name)
        if existing.security != caller:
            whose = "the cluster's administrators" if existing.security is None else "another security definition"
            raise Forbidden(f"subscription '{name}' was made by {whose}; only they may delete it")
        await self.runtime.repository.delete_subscription(name)
        servers = await self.runtime.config_changed(f"subscription:{name}", by=f"pubsub:{caller}")
        return 200, {"deleted": name, "servers": servers}

    async def pull(self, request: Request, caller: str) -> tuple[int, Any]:
        limit, wait = _pull_query(request)
        spec = self.access.subscription_to_read(caller, request.path_params["name"])
        deliveries = await _unless_gone(
            request, self.runtime.shutdown, self.runtime.broker.pull(spec.name, limit, wait, holder=f"rest:{caller}")
        )
        return 200, {"messages": [d.as_json() for d in deliveries or []]}

    async def ack(self, request: Request, caller: str) -> tuple[int, Any]:
        spec = self.access.subscription_to_read(caller, request.path_params["name"])
        ids, _ = _ids(_object(await _read(request, MAX_BODY, "the body", "limit")), with_error=False)
        return 200, {"acked": await self.runtime.broker.ack(spec.name, ids)}

    async def nack(self, request: Request, caller: str) -> tuple[int, Any]:
        spec = self.access.subscription_to_read(caller, request.path_params["name"])
        ids, error = _ids(_object(await _read(request, MAX_BODY, "the body", "limit")), with_error=True)
        return 200, {"nacked": await self.runtime.broker.nack(spec.name, ids, error)}


def routes(runtime: Runtime) -> list[Route]:
    """The routes of ``/splice/pubsub`` (mounted with the other ``/splice/`` routes)."""
    return PubSubRest(runtime, Access(runtime)).routes()


def _shown(spec: SubscriptionSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude={"service", "concurrency"})


async def _read(request: Request, limit: int, what: str, setting: str) -> bytes:
    """The body, refused (``TooLarge``) as soon as it goes past ``limit`` bytes: never read whole first."""
    too_large = TooLarge(f"{what} may have at most {limit} bytes ({setting})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _object(raw: bytes) -> dict[str, Any]:
    value = _json(raw) if raw else {}
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def _publish_options(headers: Mapping[str, str]) -> dict[str, Any]:
    """``key``, ``priority``, ``expiry`` and ``headers`` of a publish, from its ``X-Splice-*`` headers."""
    options: dict[str, Any] = {}
    key = headers.get("x-splice-key")
    if key is not None:
        if not key or len(key) > 200:
            raise BadRequest("X-Splice-Key: must be 1 to 200 characters long")
        options["key"] = key
    priority = headers.get("x-splice-priority")
    if priority is not None:
        try:
            options["priority"] = int(priority)
        except ValueError:
            raise BadRequest(
                f"X-Splice-Priority: must be an integer (higher is delivered first), got {priority!r}"
            ) from None
        if not -(2**31) <= options["priority"] < 2**31:
            raise BadRequest("X-Splice-Priority: must be a 32-bit integer")
    expiry = headers.get("x-splice-expiry")
    if expiry is not None:
        try:
            options["expiry"] = float(expiry)
        except ValueError:
            raise BadRequest(f"X-Splice-Expiry: must be a number of seconds, got {expiry!r}") from None
        if not math.isfinite(options["expiry"]) or not 0 < options["expiry"] <= 365 * 86400:
            raise BadRequest("X-Splice-Expiry: must be more than 0 and at most 31536000 seconds (a year)")
    message_headers = {k[len(HEADER_PREFIX) :]: v for k, v in headers.items() if k.lower().startswith(HEADER_PREFIX)}
    if len(message_headers) > MAX_HEADERS:
        raise BadRequest(f"a message may have at most {MAX_HEADERS} headers (X-Splice-Header-*)")
    if message_headers:
        options["headers"] = {k.lower(): v for k, v in message_headers.items() if k}
    return options


def _subscription(body: dict[str, Any], caller: str) -> SubscriptionSpec:
    unknown = [k for k in body if k not in ("name", "topic", *_OPTIONS)]
    if unknown:
        allowed = ", ".join(("name", "topic", *_OPTIONS))
        raise BadRequest(f"{', '.join(unknown)}: not a field of a subscription made here (fields: {allowed})")
    try:
        return SubscriptionSpec.model_validate({**body, "security": caller})
    except ValidationError as exc:
        raise InvalidBody(problems(exc)) from None


def _ids(body: dict[str, Any], with_error: bool) -> tuple[list[int], str]:
    allowed = ("ids", "error") if with_error else ("ids",)
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise BadRequest(f"{', '.join(unknown)}: unknown field (fields: {', '.join(allowed)})")
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest('ids: must be a list of delivery ids (the "delivery" of each message pulled)')
    if len(ids) > MAX_IDS:
        raise BadRequest(f"ids: at most {MAX_IDS} at once, got {len(ids)}")
    error = body.get("error", "")
    if not isinstance(error, str) or len(error) > 2000:
        raise BadRequest("error: must be a text of at most 2000 characters")
    return ids, error


def _no_query(request: Request) -> None:
    if request.query_params:
        raise BadRequest(f"{', '.join(request.query_params)}: unknown query parameter")


def _pull_query(request: Request) -> tuple[int, float]:
    unknown = [name for name in request.query_params if name not in ("limit", "wait")]
    if unknown:
        raise BadRequest(f"{', '.join(unknown)}: unknown query parameter (parameters: limit, wait)")
    limit_text, wait_text = request.query_params.get("limit", "10"), request.query_params.get("wait", "0")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PULL:
        raise BadRequest(f"limit: must be a whole number from 1 to {MAX_PULL}, got {limit_text!r}")
    try:
        wait = float(wait_text)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT:  # NaN fails too
        raise BadRequest(f"wait: must be a number of seconds from 0 to {MAX_WAIT:g}, got {wait_text!r}")
    return int(limit_text), wait


async def _unless_gone(request: Request, shutdown: asyncio.Event, pulling: Awaitable[Any]) -> Any:
    """What ``pulling`` gives, or ``None`` if the client went away (or the server began to stop) first: a long
    poll nobody waits for any more claims nothing."""
    pull = asyncio.ensure_future(pulling)
    watchers = [asyncio.ensure_future(_gone(request)), asyncio.ensure_future(shutdown.wait())]
    try:
        await asyncio.wait([pull, *watchers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in watchers:
            task.cancel()
        pull.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*watchers, return_exceptions=True)
    if not pull.done() or pull.cancelled():
        await asyncio.gather(pull, return_exceptions=True)
        return None
    return pull.result()


async def _gone(request: Request) -> None:
    """Returns when the client disconnects."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
