"""Admin API for caches (``/splice/admin/caches...``): define, change, delete; browse and edit entries.

Definitions are configuration like channels: stored in the ODB, then every server reloads its caches. Entries are
read and changed on the server that answers; a change made here reaches the other servers as one made by a
service does (over the cluster bus for ``memory`` caches, in Redis itself for ``redis`` ones). The figures of
``GET /caches`` are this server's.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request

from ..cache import DEFAULT, CacheSpec, MemoryCache
from ..cache.specs import CacheFields
from ..core.cache import CacheError
from ..core.errors import BadRequest, Conflict, NotFound
from ..core.naming import closest
from . import convertors as _convertors  # noqa: F401  (registers {name:text})
from .operations import Operation
from .schemas import cache as schemas

if TYPE_CHECKING:
    from ..cache.caches import AnyCache
    from ..runtime import Runtime


async def list_caches(runtime: Runtime, request: Request, body: None) -> schemas.CachesAnswer:
    declared = runtime.live.caches
    infos = []
    for name in runtime.caches.names():
        cache = runtime.caches.get(name)
        stats = await runtime.caches.stats(name)
        infos.append(schemas.CacheInfo(**cache.spec.model_dump(), declared=name in declared, **stats))
    return schemas.CachesAnswer(caches=infos)


async def create_cache(runtime: Runtime, request: Request, body: CacheFields) -> Any:
    return await _put(runtime, body, replace=False)


async def replace_cache(runtime: Runtime, request: Request, body: CacheFields) -> Any:
    if body.name != request.path_params["name"]:
        raise CacheError(
            f"the body names cache '{body.name}', the path '{request.path_params['name']}': they must agree"
        )
    return await _put(runtime, body, replace=True)


async def _put(runtime: Runtime, body: CacheFields, replace: bool) -> Any:
    try:
        spec = CacheSpec.model_validate(body.model_dump())
    except ValidationError as exc:  # the rule across fields: 'connection' with 'backend'
        said = "; ".join(str(error["msg"]) for error in exc.errors())
        raise CacheError(f"cache '{body.name}': {said}") from None
    if spec.connection is not None:
        await _check_connection(runtime, spec)
    created = await runtime.repository.put_cache(spec.model_dump(mode="json"), replace=replace)
    servers = await runtime.config_changed(f"cache:{spec.name}")
    return {"cache": spec, "created": created, "servers": servers}


async def _check_connection(runtime: Runtime, spec: CacheSpec) -> None:
    kinds = {row["name"]: row["kind"] for row in await runtime.repository.list_outgoing()}
    if kinds.get(str(spec.connection)) == "redis":
        return
    found = kinds.get(str(spec.connection))
    redis = sorted(name for name, kind in kinds.items() if kind == "redis")
    hint = closest(str(spec.connection), redis)
    what = f"'{spec.connection}' is {found}" if found else f"there is no connection named '{spec.connection}'"
    listed = ", ".join(redis) or "none"
    suggestion = f"; did you mean '{hint}'?" if hint else ""
    raise NotFound(
        f"cache '{spec.name}' needs a redis outgoing connection: {what} (redis connections: {listed}){suggestion}"
    )


async def delete_cache(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    if name == DEFAULT:
        raise Conflict(
            f"the cache '{DEFAULT}' cannot be deleted: every cluster has it"
            f" (change its limits with PUT /splice/admin/caches/{DEFAULT})"
        )
    await runtime.repository.delete_cache(name)
    servers = await runtime.config_changed(f"cache:{name}")
    return {"deleted": name, "servers": servers}


def _cache(runtime: Runtime, request: Request) -> AnyCache:
    return runtime.caches.get(request.path_params["name"])


async def list_keys(runtime: Runtime, request: Request, body: None) -> Any:
    query = schemas.KeysQuery.model_validate(dict(request.query_params))
    cache = _cache(runtime, request)
    keys = await cache.akeys(query.prefix)
    return {"cache": cache.name, "keys": keys[: query.limit], "truncated": len(keys) > query.limit}


async def get_entry(runtime: Runtime, request: Request, body: None) -> Any:
    cache, key = _cache(runtime, request), request.path_params["key"]
    found = await _entry(cache, key)
    if found is None:
        raise NotFound(f"cache '{cache.name}' holds no key '{key}' on server {runtime.server.name}")
    value, expires_in = found
    if isinstance(value, bytes):
        return {"cache": cache.name, "key": key, "value": base64.b64encode(value).decode(), "encoding": "base64"} | {
            "expires_in": expires_in
        }
    return {"cache": cache.name, "key": key, "value": value, "encoding": "json", "expires_in": expires_in}


async def _entry(cache: AnyCache, key: str) -> tuple[Any, float | None] | None:
    """The value of ``key`` and the seconds it has left, as the admin sees them (not counted as a hit or miss)."""
    if isinstance(cache, MemoryCache):
        entry = cache.store.get(key, count=False)
        if entry is None:
            return None
        left = None if entry.expires is None else round(max(entry.expires - time.time(), 0.0), 3)
        return (entry.data if entry.is_bytes else _json(entry.data)), left
    return await cache.aentry(key)


def _json(data: bytes) -> Any:
    import json

    return json.loads(data)


async def put_entry(runtime: Runtime, request: Request, body: schemas.EntryBody) -> Any:
    cache, key = _cache(runtime, request), request.path_params["key"]
    value = body.value
    if body.encoding == "base64":
        if not isinstance(value, str):
            raise BadRequest("value: with encoding base64 the value is a base64 string")
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"value: not base64 ({exc})") from None
    await cache.aset(key, value, body.expiry)
    await runtime.cluster.settle_events()  # answered once the other servers have it too
    return {"cache": cache.name, "key": key, "set": True}


async def delete_entry(runtime: Runtime, request: Request, body: None) -> Any:
    cache, key = _cache(runtime, request), request.path_params["key"]
    existed = await cache.adelete(key)
    await runtime.cluster.settle_events()
    return {"cache": cache.name, "key": key, "existed": existed}


async def clear_cache(runtime: Runtime, request: Request, body: None) -> Any:
    cache = _cache(runtime, request)
    cleared = await cache.aclear()
    await runtime.cluster.settle_events()
    return {"cache": cache.name, "cleared": cleared}


OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/caches",
        list_caches,
        "Caches, with this server's entries, bytes, hits and misses",
        schemas.CachesAnswer,
    ),
    Operation(
        "POST",
        "/caches",
        create_cache,
        "Define a cache (what a [[caches]] table of splice.toml declares); every server makes it",
        schemas.CacheAnswer,
        body=schemas.CacheBody,
        status=201,
        errors=(404, 409, 413, 422),
    ),
    Operation(
        "PUT",
        "/caches/{name}",
        replace_cache,
        "Define or change a cache; a memory cache keeps the entries that fit its new limits",
        schemas.CacheAnswer,
        body=schemas.CacheBody,
        errors=(404, 413, 422),
    ),
    Operation(
        "DELETE",
        "/caches/{name}",
        delete_cache,
        "Delete a cache and its entries (not the default cache)",
        schemas.CacheDeleted,
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/caches/{name}/keys",
        list_keys,
        "Keys of a cache on this server, by prefix",
        schemas.KeysAnswer,
        query=schemas.KeysQuery,
        errors=(404, 422),
    ),
    Operation(
        "GET",
        "/caches/{name}/entries/{key:text}",
        get_entry,
        "One entry as this server holds it",
        schemas.EntryAnswer,
        errors=(404, 422),
    ),
    Operation(
        "PUT",
        "/caches/{name}/entries/{key:text}",
        put_entry,
        "Set an entry here; every server gets it (memory: over the bus; redis: the one copy)",
        schemas.EntrySet,
        body=schemas.EntryBody,
        errors=(404, 413, 422),
    ),
    Operation(
        "DELETE",
        "/caches/{name}/entries/{key:text}",
        delete_entry,
        "Delete an entry on every server",
        schemas.EntryDeleted,
        errors=(404, 422),
    ),
    Operation(
        "POST", "/caches/{name}/clear", clear_cache, "Clear a cache on every server", schemas.Cleared, errors=(404, 422)
    ),
]


__all__ = ["OPERATIONS"]
