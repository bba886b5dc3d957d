"""Security definitions of channels: HTTP Basic and API keys. Secrets are stored only as salted hashes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

KINDS = ("basic", "apikey")
_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str) -> str:
    """``scrypt$<salt hex>$<hash hex>``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    try:
        salt_bytes = bytes.fromhex(salt)
    except ValueError:
        return False
    candidate = hashlib.scrypt(secret.encode(), salt=salt_bytes, n=_N, r=_R, p=_P, dklen=32)
    return hmac.compare_digest(candidate.hex().encode(), digest.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SecurityDefinition:
    name: str
    kind: str
    secret_hash: str
    username: str | None = None
    header: str | None = None


class Verifier:
    """Checks credentials against security definitions; remembers verified ones, as scrypt is slow on purpose."""

    def __init__(self) -> None:
        self._verified: set[tuple[str, str, str]] = set()

    def check(self, definition: SecurityDefinition, headers: Mapping[str, str]) -> bool:
        if definition.kind == "basic":
            # Bytes: compare_digest refuses str with non-ASCII characters, and a user name may have them.
            presented = _basic(headers.get("authorization", ""))
            if presented is None or not hmac.compare_digest(
                presented[0].encode(), (definition.username or "").encode()
            ):
                return False
            secret = presented[1]
        else:
            secret = headers.get((definition.header or "x-api-key").lower(), "")
            if not secret:
                return False
        key = (definition.name, definition.secret_hash, hashlib.sha256(secret.encode()).hexdigest())
        if key in self._verified:
            return True
        if verify_secret(secret, definition.secret_hash):
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified.add(key)
            return True
        return False


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
