"""The dashboard's users: ``users.json`` in its directory, mode 0600, passwords as scrypt hashes.

``splice dashboard user create|delete|password`` changes the file; a running dashboard reads it again when it
changes (``Users.reload_if_changed``), so a new user or password works without a restart.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from splice.server.channels import hash_secret, verify_secret

logger = logging.getLogger(__name__)

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
"""scrypt takes any length; a cap keeps a login form from being a way to burn CPU."""


class UserError(ValueError):
    """A change of users that cannot be made: says which and why."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def may_change(self) -> bool:
        return self.role == "admin"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is too long: at most {MAX_PASSWORD} characters")


class Users:
    """The users file. Every change is written whole to a new file (0600) that replaces the old one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, dict[str, str]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self.generation = 0
        """Goes up whenever the users change (read again, or written here): sessions compare it to end theirs."""
        self.reload_if_changed()

    def reload_if_changed(self) -> bool:
        """Read the file again if it changed since the last read (one ``stat``); whether the users changed.

        A file that is not valid JSON is reported and the users read before are kept (a half-saved edit must
        not log everyone out, nor let anyone in)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            changed = bool(self._users)
            self._users, self._stamp = {}, None
            self.generation += changed
            return changed
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            users = {str(name): dict(entry) for name, entry in data.get("users", {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "its shape"
            logger.error("%s: not a users file (%s: %s); the users read before stay", self.path, where, exc)
            return False
        self._users = users
        self.generation += 1
        return True

    def stamp(self, name: str) -> str | None:
        """What a session of ``name`` was opened with: it changes with the password or the role (None: gone)."""
        entry = self._users.get(name)
        if entry is None:
            return None
        return hashlib.sha256(f"{entry.get('role')}\n{entry.get('hash')}".encode()).hexdigest()

    def names(self) -> list[str]:
        return sorted(self._users)

    def get(self, name: str) -> User | None:
        entry = self._users.get(name)
        return None if entry is None else _user(name, entry)

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (scrypt: slow on purpose; call it off the event loop)."""
        entry = self._users.get(name)
        if entry is None or len(password) > MAX_PASSWORD:
            # The same work for an unknown name: the time taken does not tell which names exist.
            verify_secret(password[:MAX_PASSWORD], _dummy_hash())
            return None
        if not verify_secret(password, str(entry.get("hash", ""))):
            return None
        return _user(name, entry)

    def create(self, name: str, password: str, role: Role) -> None:
        _check_name(name)
        if name in self._users:
            raise UserError(f"there is a user named '{name}' already ('splice dashboard user password' changes it)")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        check_password(password)
        self._users[name] = {"hash": hash_secret(password), "role": role, "created_at": _now()}
        self._write()

    def set_password(self, name: str, password: str) -> None:
        entry = self._known(name)
        check_password(password)
        entry["hash"] = hash_secret(password)
        self._write()

    def delete(self, name: str) -> None:
        self._known(name)
        del self._users[name]
        self._write()

    def _known(self, name: str) -> dict[str, str]:
        entry = self._users.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UserError(f"no dashboard user named '{name}' (users: {known})")
        return entry

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"users": self._users}, handle, indent=2, sort_keys=True)
        os.replace(partial, self.path)
        stat = self.path.stat()
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        self.generation += 1


def _user(name: str, entry: dict[str, str]) -> User | None:
    role = entry.get("role")
    if role == "admin":
        return User(name, "admin")
    if role == "viewer":
        return User(name, "viewer")
    logger.error("dashboard user %r has no known role (%r; roles: %s): refused", name, role, ", ".join(ROLES))
    return None


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(f"a user name is 1 to 64 letters, digits and . _ - @; got {name!r}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist (the same work as for one who does), made at the
    first such login: scrypt at import cost every process importing the dashboard ~0.3 s of CPU."""
    return hash_secret("splice-dashboard-no-such-user")


__all__ = ["MIN_PASSWORD", "ROLES", "Role", "User", "UserError", "Users", "check_password"]
