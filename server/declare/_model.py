"""What a declaration file holds, and what applying it changes: the reader's data, no logic but how each is shown.

``declare.reader`` makes these (``parse``, ``resolve_secrets``, ``plan``) and re-exports them; they live apart so
the reader stays one concern (reading and planning) and the modules of each section can name them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..cache.specs import CacheSpec
from ..channels.specs import SECRET_FIELD
from ..core.errors import SpliceError
from ..pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec
from ._jobs import JobDeclaration
from ._outgoing import OutgoingDeclaration


@dataclass(frozen=True)
class DeclarationProblem:
    """One thing wrong with a declaration file, located as precisely as the file allows."""

    file: str
    message: str
    field: str = ""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


class DeclarationError(SpliceError):
    """A declaration file was refused; nothing was changed."""

    code = "invalid_declaration"

    def __init__(self, problems: Sequence[DeclarationProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self), "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True)
class SecuritySpec:
    name: str
    kind: str
    username: str | None
    header: str | None
    secret_env: str
    """The environment variable holding the password (``basic``) or key (``apikey``)."""
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def secret_field(self) -> str:
        return SECRET_FIELD[self.kind]


@dataclass(frozen=True)
class ChannelSpec:
    """A channel of any kind as the ODB keeps it (``channels.specs.channel_columns``): a kind without a path has
    ``""``, one without methods ``()``, JSON-RPC (many services) no ``service``; the rest of a kind is ``options``."""

    name: str
    path: str
    methods: tuple[str, ...]
    service: str
    security: str | None
    kind: str = "rest"
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def connection(self) -> str | None:
        """The AMQP outgoing connection an ``amqp`` channel consumes through."""
        value = self.options.get("connection")
        return value if isinstance(value, str) else None


DefinitionSpec = TopicSpec | SubscriptionSpec | TopicPermission | CacheSpec


@dataclass(frozen=True)
class Definition:
    """A topic, subscription, topic permission or cache as a file declares it: its checked spec (``_pubsub``)."""

    kind: str
    """``topic``, ``subscription``, ``topic_permission`` or ``cache`` (as its ``Change`` names it)."""
    spec: DefinitionSpec = field(hash=False)
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """The field that names it: topic permissions are those of a security definition."""
        return "security" if isinstance(self.spec, TopicPermission) else "name"

    @property
    def name(self) -> str:
        return self.spec.security if isinstance(self.spec, TopicPermission) else self.spec.name

    def stored(self) -> dict[str, Any]:
        """The spec's JSON form, as the ODB takes it (``odb.topics``' ``put_named_row``, ``put_permission_row``)."""
        return self.spec.model_dump(mode="json")


@dataclass(frozen=True)
class Declaration:
    """What a declaration file asks the cluster to hold."""

    file: str
    security: tuple[SecuritySpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    jobs: tuple[JobDeclaration, ...] = ()
    outgoing: tuple[OutgoingDeclaration, ...] = ()
    topics: tuple[Definition, ...] = ()
    subscriptions: tuple[Definition, ...] = ()
    topic_permissions: tuple[Definition, ...] = ()
    caches: tuple[Definition, ...] = ()

    def definitions(self) -> tuple[Definition, ...]:
        """Its topics, subscriptions, topic permissions and caches, in that order."""
        return (*self.topics, *self.subscriptions, *self.topic_permissions, *self.caches)

    def secret_names(self) -> list[str]:
        """The environment variables the file's secrets come from (security and outgoing), each once."""
        envs = {s.secret_env for s in self.security}
        return sorted(envs.union(*(o.secret_envs.values() for o in self.outgoing)))

    def problem(self, spec: Located, key: str, message: str) -> DeclarationProblem:
        return DeclarationProblem(self.file, message, f"{spec.where}.{key}", spec.lines.get(key, spec.lines.get("")))


Located = SecuritySpec | ChannelSpec | JobDeclaration | OutgoingDeclaration | Definition


@dataclass(frozen=True)
class Secrets:
    """A declaration's secrets, read from an environment: never shown, not even by ``repr``."""

    security: Mapping[str, str] = field(default_factory=dict)
    """Each security definition's secret, by definition name."""
    outgoing: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Each outgoing connection's secrets (``password``, ``key``, ``token``), by connection name."""

    def __repr__(self) -> str:
        outgoing = {name: sorted(values) for name, values in self.outgoing.items()}
        return f"Secrets(security={sorted(self.security)}, outgoing={outgoing})"


_SHOWN = {
    "security": "security definition",
    "outgoing": "outgoing connection",
    "topic_permission": "topic permissions of",
}


@dataclass(frozen=True)
class Change:
    kind: str
    """``security``, ``outgoing``, ``channel``, ``job``, ``topic``, ``subscription``, ``topic_permission`` or
    ``cache``."""
    name: str
    action: str
    """``create``, ``update``, ``delete`` or ``unchanged``."""
    fields: tuple[str, ...] = ()
    """For an update, the fields that differ (a secret is named, never shown)."""

    def __str__(self) -> str:
        what = _SHOWN.get(self.kind, self.kind)
        detail = f" ({', '.join(self.fields)})" if self.action == "update" else ""
        return f"{self.action} {what} {self.name}{detail}"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "action": self.action, "fields": list(self.fields)}


@dataclass(frozen=True)
class Plan:
    """The changes that make the cluster hold a declaration, in the order they are carried out."""

    file: str
    changes: tuple[Change, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def of(self, kind: str, *actions: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind and c.action in actions]

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0, "unchanged": 0}
        for change in self.changes:
            out[change.action] += 1
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "changed": self.changed,
            "counts": self.counts(),
            "changes": [c.as_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class SealedSecrets:
    """An outgoing connection's secrets as ``apply`` stores them: encrypted with the cluster key (``token``), the
    names of the secrets in it, the key's id. ``SealedSecrets.NONE`` removes the stored ones (the file has none).
    """

    token: str
    names: tuple[str, ...]
    key_id: str

    NONE: ClassVar[SealedSecrets]

    def __repr__(self) -> str:
        return f"SealedSecrets(names={list(self.names)}, key_id={self.key_id!r})"


SealedSecrets.NONE = SealedSecrets("", (), "")
