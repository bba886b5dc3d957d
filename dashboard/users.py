"""The dashboard's users: ``users.json`` in its directory, mode 0600, passwords as scrypt hashes.

``splice dashboard user create|delete|password`` changes the file; a running dashboard reads it again when it
changes (``Users.reload_if_changed``), so a new user or password works without a restart.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from splice.server.channels import hash_secret, verify_secret

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
        self._stamp: tuple[int, int] | None = None
        self.reload_if_changed()

    def reload_if_changed(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._users, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        self._users = dict(data.get("users", {}))
        self._stamp = stamp

    def names(self) -> list[str]:
        return sorted(self._users)

    def get(self, name: str) -> User | None:
        entry = self._users.get(name)
        return None if entry is None else User(name, entry["role"])  # type: ignore[arg-type]

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (scrypt: slow on purpose; call it off the event loop)."""
        entry = self._users.get(name)
        if entry is None or len(password) > MAX_PASSWORD:
            # The same work for an unknown name: the time taken does not tell which names exist.
            verify_secret(password[:MAX_PASSWORD], _DUMMY_HASH)
            return None
        return User(name, entry["role"]) if verify_secret(password, entry["hash"]) else None  # type: ignore[arg-type]

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
        self._stamp = (stat.st_mtime_ns, stat.st_size)


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(f"a user name is 1 to 64 letters, digits and . _ - @; got {name!r}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_DUMMY_HASH = hash_secret("splice-dashboard-no-such-user")

__all__ = ["MIN_PASSWORD", "ROLES", "Role", "User", "UserError", "Users", "check_password"]
