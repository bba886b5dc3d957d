"""Secrets a server must use (passwords, API keys, tokens of outgoing connections), encrypted at rest.

Unlike a security definition's secret, which only has to be checked and so is kept as a salted hash, an
outgoing connection's password must be sent: it is stored encrypted (Fernet: AES-128-CBC with an HMAC, from
``cryptography``) with the cluster key, which is not in the ODB. The key is ``$SPLICE_SECRET_KEY`` when set,
else the file ``secret-key`` in the cluster directory (mode 0600, made when first needed). Every server of a
cluster needs the same key: a server in a directory of its own gets a copy of the file, or the variable.

Each stored secret carries the key's id (the first 12 hex digits of its sha256), so a server with another key
says so instead of failing obscurely.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_FILE = "secret-key"
KEY_VARIABLE = "SPLICE_SECRET_KEY"
MASK = "***"
"""How a secret shows everywhere: admin API answers, the CLI, the dashboard, logs."""


class SecretsError(ConfigError):
    code = "secrets_unreadable"


class ClusterKey:
    """The cluster's key: encrypts secrets for the ODB and decrypts them where a server uses them."""

    def __init__(self, key: bytes, where: str) -> None:
        # Fernet's own check of the key, without importing cryptography (~7 MiB and ~30 ms of every server's
        # start): a server with no secrets only derives its internal token from the key (``derive``)
        if len(base64.urlsafe_b64decode(key)) != 32:
            raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes.")
        self._key = key
        self.where = where
        self.id = hashlib.sha256(key).hexdigest()[:12]

    @classmethod
    def load(cls, directory: Path, environ: Mapping[str, str] | None = None, create: bool = True) -> ClusterKey:
        """The key from ``$SPLICE_SECRET_KEY``, else ``directory/secret-key`` (made with mode 0600 if ``create``)."""
        environ = os.environ if environ is None else environ
        if value := environ.get(KEY_VARIABLE):
            return cls._checked(value.strip().encode(), f"${KEY_VARIABLE}")
        path = directory / KEY_FILE
        if not path.exists():
            if not create:
                raise SecretsError(str(path), f"no cluster key: set ${KEY_VARIABLE} or copy {KEY_FILE} here")
            _create(path)
        return cls._checked(path.read_bytes().strip(), str(path))

    @classmethod
    def _checked(cls, key: bytes, where: str) -> ClusterKey:
        try:
            return cls(key, where)
        except (ValueError, binascii.Error):
            raise SecretsError(
                where, "is not a cluster key (32 url-safe base64-encoded bytes, as Fernet.generate_key() makes)"
            ) from None

    def derive(self, purpose: str) -> str:
        """A secret derived from the key for ``purpose`` (HMAC-SHA256, hex): the same on every server holding the
        key, unguessable without it, and telling nothing about the key or another purpose's secret."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).hexdigest()

    @functools.cached_property
    def _fernet(self) -> Fernet:
        from cryptography.fernet import Fernet

        return Fernet(self._key)

    def encrypt(self, secrets: Mapping[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(dict(secrets)).encode()).decode()

    def decrypt(self, token: str, key_id: str | None, what: str) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            values = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            other = f"key {key_id}" if key_id else "another key"
            raise SecretsError(
                self.where,
                f"cannot decrypt the secrets of {what}: they were encrypted with {other}, this server has key"
                f" {self.id}; give every server of the cluster the same {KEY_FILE} file or ${KEY_VARIABLE}",
            ) from None
        return {str(k): str(v) for k, v in values.items()}


def _create(path: Path) -> None:
    """Write a new key whole, then link it into place: a server reading it never sees half a file."""
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.urlsafe_b64encode(os.urandom(32)) + b"\n")  # what Fernet.generate_key() makes
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another server of this directory made it first: theirs is the key
    finally:
        temporary.unlink()


__all__ = ["KEY_FILE", "KEY_VARIABLE", "MASK", "ClusterKey", "SecretsError"]
