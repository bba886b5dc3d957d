"""What a cache holds: values as bytes (JSON text, or ``bytes`` as given) and the versions that order changes.

A value is stored encoded, so a caller can never change what the cache holds by mutating what it set or got
(each ``get`` decodes a fresh copy), and so its size is known. JSON turns tuples into lists and keys of dicts
into strings, as it does anywhere else. A version is ``(microseconds, server)``: the newest change of a key
wins on every server whatever order the changes arrive in (last writer wins). ``Clock`` makes them on one
server, strictly increasing, and never behind a version it has seen from another server (a hybrid logical
clock), so a change made after seeing another's is ordered after it even if the two clocks disagree.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from ..core.cache import CacheError

Version = tuple[int, str]
"""(microseconds since the epoch, server name): the order of changes across the cluster."""
ZERO: Version = (0, "")
MAX_KEY = 1000
"""Characters in a key, at most."""


class ValueTooLarge(CacheError):
    """A value over its cache's ``max_value``."""

    code = "too_large"


class Clock:
    """Versions for one server's changes: increasing, and after every version this server has seen."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> Version:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return (self._last, self.server)

    def seen(self, version: Version) -> None:
        """A version from another server: what this one makes next comes after it."""
        if version[0] > self._last:
            with self._lock:
                self._last = max(self._last, version[0])


def check_key(cache: str, key: object) -> str:
    if not isinstance(key, str) or not key:
        raise CacheError(f"cache '{cache}': a key is a non-empty string, not {key!r}")
    if len(key) > MAX_KEY:
        raise CacheError(f"cache '{cache}': the key '{key[:40]}...' has {len(key)} characters, more than {MAX_KEY}")
    return key


def encode(cache: str, key: str, value: Any, max_value: int) -> tuple[bytes, bool]:
    """``value`` as stored, and whether it is ``bytes`` (else JSON text); ``CacheError`` if it cannot be."""
    if isinstance(value, bytes | bytearray | memoryview):
        data, is_bytes = bytes(value), True
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise CacheError(
                f"cache '{cache}': the value of '{key}' cannot be stored ({exc}); give what JSON carries, or bytes"
            ) from None
        data, is_bytes = text.encode(), False
    if len(data) > max_value:
        raise ValueTooLarge(
            f"cache '{cache}': the value of '{key}' takes {len(data)} bytes, more than max_value {max_value}"
        )
    return data, is_bytes


def decode(data: bytes, is_bytes: bool) -> Any:
    return data if is_bytes else json.loads(data)


def to_wire(data: bytes, is_bytes: bool) -> str:
    """A stored value as a string an event carries (JSON text as it is, bytes in base64)."""
    return base64.b64encode(data).decode() if is_bytes else data.decode()


def from_wire(text: str, is_bytes: bool) -> bytes:
    return base64.b64decode(text) if is_bytes else text.encode()


def expires_at(expiry: float | None, default: float | None) -> float | None:
    """When an entry set now with ``expiry`` seconds (``None``: the cache's ``default``) stops being served."""
    seconds = default if expiry is None else expiry
    if seconds is None:
        return None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise CacheError(f"an expiry is a number of seconds above 0, not {seconds!r}")
    return time.time() + seconds


__all__ = [
    "MAX_KEY",
    "ZERO",
    "Clock",
    "ValueTooLarge",
    "Version",
    "check_key",
    "decode",
    "encode",
    "expires_at",
    "from_wire",
    "to_wire",
]
