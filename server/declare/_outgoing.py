"""The ``[[outgoing]]`` part of a declaration file: reading one connection and comparing it with the stored one.

Pure, no I/O; ``declare.reader`` calls these and documents the format. An item is checked with its kind's pydantic
spec (``splice.server.connections.KINDS[kind].spec``), the same model the admin API checks its bodies with, after
the one thing only a file has: its secrets are named by environment variable (``password_env``, ``key_env``,
``token_env``), never written in it.

A stored connection keeps its spec in clear (``config``) and its secrets encrypted; the plan compares the spec
field by field and takes from the caller which secrets differ (``declare.apply`` decrypts the stored ones to
tell, see ``apply_declaration``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..connections import KINDS, OutgoingSpec
from ..core.naming import closest

if TYPE_CHECKING:
    from .reader import _Reader

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRETS = ("password", "key", "token")
"""Every secret a kind may take; a kind's spec says which it does (``OutgoingSpec.SECRETS``)."""
_LITERALS = (*SECRETS, "secret")
_SAME = ("name", "kind")
"""Config keys that are not compared field by field: the name is the key, the kind is reported on its own."""


@dataclass(frozen=True)
class OutgoingDeclaration:
    """An outgoing connection as a file declares it: its checked spec and where its secrets come from."""

    name: str
    kind: str
    config: Mapping[str, Any] = field(hash=False)
    """The spec as the ODB keeps it (``spec.model_dump(mode="json")``): the file's fields, defaults filled in."""
    secret_envs: Mapping[str, str] = field(default_factory=dict, hash=False)
    """The environment variable of each secret it takes: ``{"password": "BILLING_PASSWORD"}``."""
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)


def a(word: str) -> str:
    """``a rest``, ``an amqp``: for messages."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def read_outgoing(reader: _Reader) -> OutgoingDeclaration | None:
    """The connection of one ``[[outgoing]]`` item, or ``None`` when ``reader`` collected a problem with it."""
    before = len(reader.problems)
    table = dict(reader.table)
    kind = table.get("kind")
    model = KINDS[kind].spec if isinstance(kind, str) and kind in KINDS else None
    if model is None:
        known = sorted(KINDS)
        if kind is None:
            reader.problem("kind", f"is required: one of {', '.join(known)}")
        else:
            hint = closest(kind, known) if isinstance(kind, str) else None
            suffix = f"; did you mean '{hint}'?" if hint else ""
            reader.problem("kind", f"must be one of {', '.join(known)}, got {kind!r}{suffix}")
    taken = model.SECRETS if model is not None else SECRETS
    envs = _secret_envs(reader, table, kind if model is not None else None, taken)
    if model is None:
        return None
    try:
        spec = model.model_validate(table)
    except ValidationError as exc:
        allowed = {*model.model_fields, *(f"{secret}_env" for secret in model.SECRETS)}
        reader.report(exc, allowed, f"{a(str(kind))} connection")
        return None
    _check_secrets(reader, spec, envs)
    if len(reader.problems) > before:
        return None
    return OutgoingDeclaration(spec.name, spec.kind, spec.model_dump(mode="json"), envs, reader.where, reader.lines)


def _secret_envs(reader: _Reader, table: dict[str, Any], kind: str | None, taken: tuple[str, ...]) -> dict[str, str]:
    """Take the secrets' keys out of ``table`` (the spec has none): the variables named, checked."""
    envs: dict[str, str] = {}
    named = " or ".join(f"{secret}_env" for secret in taken)
    for key in list(table):
        if key in _LITERALS:
            table.pop(key)
            instead = f"{key}_env" if key in taken else named
            reader.problem(key, f"secrets never come from the file: name an environment variable with {instead}")
        elif key.endswith("_env") and key.removesuffix("_env") in SECRETS:
            value, secret = table.pop(key), key.removesuffix("_env")
            if secret not in taken:
                reader.problem(key, f"{a(str(kind))} connection takes no {secret} (its secrets: {named})")
            elif not isinstance(value, str) or not ENV_NAME.fullmatch(value):
                reader.problem(key, f"must name an environment variable (letters, digits, '_'), got {value!r}")
            else:
                envs[secret] = value
    return envs


def _check_secrets(reader: _Reader, spec: OutgoingSpec, envs: Mapping[str, str]) -> None:
    """What a kind's secrets need besides themselves: the kind's rule, as the admin API applies it."""
    for secret, message in type(spec).secret_problems(spec.username, envs):
        reader.problem(f"{secret}_env", message)


def outgoing_differs(
    spec: OutgoingDeclaration, current: Mapping[str, Any], stale: Mapping[str, Collection[str]]
) -> tuple[str, ...]:
    """The fields of ``spec`` that differ from ``current`` (``OdbOutgoing.list_outgoing``'s row of that name).

    ``stale[name]`` lists the secrets whose stored value differs from the declared one; a missing entry counts
    every declared secret as different. A secret declared but not stored, or stored but not declared, differs too.
    """
    have: Mapping[str, Any] = current.get("config") or {}
    differs = [] if current.get("kind") == spec.kind else ["kind"]
    keys = dict.fromkeys([*spec.config, *have])
    differs += [key for key in keys if key not in _SAME and spec.config.get(key) != have.get(key)]
    declared, stored = set(spec.secret_envs), set(current.get("secret_names") or ())
    differs += sorted(set(stale.get(spec.name, declared)) | (declared ^ stored))
    return tuple(differs)
