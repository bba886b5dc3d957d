"""A ``redis`` cache: one copy shared by every server, in the Redis of an outgoing connection of kind ``redis``.

Keys are ``splice:cache:<cache>:<key>``; expiry is Redis's own (``PX``). JSON values are stored as their JSON
text (so ``incr`` is Redis's ``INCRBY``, atomic across the cluster), ``bytes`` behind a NUL byte (no JSON text
starts with one). The plain methods use the connection's blocking client and are for ``def handle`` (a worker
thread); on the event loop they would stall every other call, so there they raise and name the async twin.
``max_entries`` and ``max_bytes`` are left to Redis (its ``maxmemory`` policy); ``max_value`` is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..core.cache import MISSING, CacheError
from ..core.errors import SpliceError
from ..core.outgoing import ConnectionSource
from .specs import CacheSpec
from .values import check_key, encode, expires_at

logger = logging.getLogger(__name__)
BYTES = b"\x00"
SCAN_COUNT = 1000
CHUNK = 500
INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""
"""INCRBY, and the cache's default expiry on a key that had none (one made by this very call)."""


def _glob(text: str) -> str:
    """``text`` with Redis's glob characters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _stored(data: bytes, is_bytes: bool) -> bytes:
    return BYTES + data if is_bytes else data


def _value(raw: bytes) -> Any:
    import json

    return raw[1:] if raw[:1] == BYTES else json.loads(raw)


class RedisCache:
    """``splice.server.core.cache.Cache`` over Redis."""

    def __init__(self, spec: CacheSpec, connections: ConnectionSource) -> None:
        assert spec.connection is not None
        self.name = spec.name
        self.spec = spec
        self.connections = connections
        self.prefix = f"splice:cache:{spec.name}:"
        self.hits = 0
        self.misses = 0

    def _encoded(self, key: str, value: Any, expiry: float | None) -> tuple[bytes, int | None]:
        data, is_bytes = encode(self.name, check_key(self.name, key), value, self.spec.max_value)
        return _stored(data, is_bytes), _px(expiry, self.spec.expiry)

    def _count(self, found: bool) -> None:
        if found:
            self.hits += 1
        else:
            self.misses += 1

    @contextlib.contextmanager
    def _client(self, blocking: bool) -> Iterator[Any]:
        if blocking:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError(
                    f"cache '{self.name}' is in Redis: on the event loop (async def handle) use the async methods"
                    " (await .aget(...), .aset(...)), which do not block it"
                )
        try:
            client, release = self.connections.lease("redis", str(self.spec.connection), blocking)
        except SpliceError:
            raise
        except Exception as exc:  # connections.ConnectionUnusable: a definition this server cannot open
            raise CacheError(f"cache '{self.name}': {exc}") from exc
        try:
            yield client
        except CacheError:
            raise
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            raise CacheError(f"cache '{self.name}': Redis connection '{self.spec.connection}' failed: {exc}") from exc
        finally:
            release()

    # -- blocking ----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        with self._client(True) as redis:
            raw = redis.get(self.prefix + check_key(self.name, key))
        self._count(raw is not None)
        return default if raw is None else _value(raw)

    def set(self, key: str, value: Any, expiry: float | None = None) -> None:
        data, px = self._encoded(key, value, expiry)
        with self._client(True) as redis:
            redis.set(self.prefix + key, data, px=px)

    def delete(self, key: str) -> bool:
        with self._client(True) as redis:
            return bool(redis.delete(self.prefix + check_key(self.name, key)))

    def exists(self, key: str) -> bool:
        with self._client(True) as redis:
            return bool(redis.exists(self.prefix + check_key(self.name, key)))

    def incr(self, key: str, by: int = 1) -> int:
        px = _incr_args(by, self.spec.expiry)
        with self._client(True) as redis:
            return self._incr_result(key, lambda: redis.eval(INCR, 1, self.prefix + check_key(self.name, key), by, px))

    def decr(self, key: str, by: int = 1) -> int:
        return self.incr(key, -by)

    def get_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any:
        found = self.get(key, MISSING)
        if found is not MISSING:
            return found
        made = value() if callable(value) else value
        data, px = self._encoded(key, made, expiry)
        with self._client(True) as redis:
            if redis.set(self.prefix + key, data, px=px, nx=True):
                return made
            raw = redis.get(self.prefix + key)
        return made if raw is None else _value(raw)

    def keys(self, prefix: str = "") -> list[str]:
        with self._client(True) as redis:
            found = redis.scan_iter(match=_glob(self.prefix + prefix) + "*", count=SCAN_COUNT)
            return sorted(self._key(raw) for raw in found)

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        keys = self.keys(prefix)
        out: list[tuple[str, Any]] = []
        with self._client(True) as redis:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                values = redis.mget([self.prefix + k for k in chunk])
                out += [(k, _value(v)) for k, v in zip(chunk, values, strict=True) if v is not None]
        return out

    def delete_prefix(self, prefix: str) -> int:
        keys = self.keys(prefix)
        gone = 0
        with self._client(True) as redis:
            for start in range(0, len(keys), CHUNK):
                gone += int(redis.unlink(*(self.prefix + k for k in keys[start : start + CHUNK])))
        return gone

    def clear(self) -> int:
        return self.delete_prefix("")

    # -- async -------------------------------------------------------------------------------------

    async def aget(self, key: str, default: Any = None) -> Any:
        with self._client(False) as redis:
            raw = await redis.get(self.prefix + check_key(self.name, key))
        self._count(raw is not None)
        return default if raw is None else _value(raw)

    async def aset(self, key: str, value: Any, expiry: float | None = None) -> None:
        data, px = self._encoded(key, value, expiry)
        with self._client(False) as redis:
            await redis.set(self.prefix + key, data, px=px)

    async def adelete(self, key: str) -> bool:
        with self._client(False) as redis:
            return bool(await redis.delete(self.prefix + check_key(self.name, key)))

    async def aexists(self, key: str) -> bool:
        with self._client(False) as redis:
            return bool(await redis.exists(self.prefix + check_key(self.name, key)))

    async def aincr(self, key: str, by: int = 1) -> int:
        px = _incr_args(by, self.spec.expiry)
        with self._client(False) as redis:
            try:
                result = await redis.eval(INCR, 1, self.prefix + check_key(self.name, key), by, px)
            except Exception as exc:
                raise self._not_integer(key, exc) from exc
        return int(result)

    async def adecr(self, key: str, by: int = 1) -> int:
        return await self.aincr(key, -by)

    async def aget_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any:
        """As ``get_or_set``; ``value`` may also be an async function."""
        found = await self.aget(key, MISSING)
        if found is not MISSING:
            return found
        made = value() if callable(value) else value
        if inspect.isawaitable(made):
            made = await made
        data, px = self._encoded(key, made, expiry)
        with self._client(False) as redis:
            if await redis.set(self.prefix + key, data, px=px, nx=True):
                return made
            raw = await redis.get(self.prefix + key)
        return made if raw is None else _value(raw)

    async def akeys(self, prefix: str = "") -> list[str]:
        with self._client(False) as redis:
            found = [raw async for raw in redis.scan_iter(match=_glob(self.prefix + prefix) + "*", count=SCAN_COUNT)]
        return sorted(self._key(raw) for raw in found)

    async def aitems(self, prefix: str = "") -> list[tuple[str, Any]]:
        keys = await self.akeys(prefix)
        out: list[tuple[str, Any]] = []
        with self._client(False) as redis:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                values = await redis.mget([self.prefix + k for k in chunk])
                out += [(k, _value(v)) for k, v in zip(chunk, values, strict=True) if v is not None]
        return out

    async def adelete_prefix(self, prefix: str) -> int:
        keys = await self.akeys(prefix)
        gone = 0
        with self._client(False) as redis:
            for start in range(0, len(keys), CHUNK):
                gone += int(await redis.unlink(*(self.prefix + k for k in keys[start : start + CHUNK])))
        return gone

    async def aclear(self) -> int:
        return await self.adelete_prefix("")

    # -- helpers -----------------------------------------------------------------------------------

    def _key(self, raw: bytes | str) -> str:
        text = raw.decode() if isinstance(raw, bytes) else raw
        return text[len(self.prefix) :]

    def _incr_result(self, key: str, call: Callable[[], Any]) -> int:
        try:
            return int(call())
        except Exception as exc:
            raise self._not_integer(key, exc) from exc

    def _not_integer(self, key: str, exc: Exception) -> Exception:
        from redis.exceptions import ResponseError

        if isinstance(exc, ResponseError):
            return CacheError(f"cache '{self.name}': '{key}' does not hold an integer: it cannot be incr'd ({exc})")
        return exc

    async def aentry(self, key: str) -> tuple[Any, float | None] | None:
        """The value of ``key`` and the seconds it has left (for the admin API; not a hit or miss)."""
        with self._client(False) as redis:
            async with redis.pipeline(transaction=True) as pipe:
                raw, left = await pipe.get(self.prefix + check_key(self.name, key)).pttl(self.prefix + key).execute()
        if raw is None:
            return None
        return _value(raw), (None if left < 0 else left / 1000)

    async def stats(self) -> dict[str, Any]:
        """Entries counted in Redis (a scan; ``None`` while it cannot be reached); bytes are Redis's business."""
        try:
            entries: int | None = len(await self.akeys())
        except Exception as exc:  # figures for the admin API: an unreachable Redis must not fail the listing
            logger.warning("cache %s: cannot count its entries in Redis: %s", self.name, exc)
            entries = None
        return {"entries": entries, "bytes": None, "hits": self.hits, "misses": self.misses, "evictions": None}

    def __repr__(self) -> str:
        return f"<RedisCache {self.name!r} on connection {self.spec.connection!r}>"


def _px(expiry: float | None, default: float | None) -> int | None:
    """Milliseconds for ``PX`` (at least 1), or ``None`` for no expiry."""
    expires_at(expiry, default)  # refuses what is not a number of seconds
    seconds = default if expiry is None else expiry
    return None if seconds is None else max(1, round(seconds * 1000))


def _incr_args(by: int, default: float | None) -> int:
    if not isinstance(by, int) or isinstance(by, bool):
        raise TypeError(f"incr/decr take an integer, not {by!r}")
    return max(1, round(default * 1000)) if default else 0


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)


__all__ = ["RedisCache"]
