"""Configuration as code: read a declaration file (``splice.toml``) and plan what applying it changes.

Pure, no I/O. ``parse`` turns the file's text into a ``Declaration``, naming every problem at once with
the file, the line when it can be found, and the field (``splice.toml:12: channels[1].path: ...``).
``resolve_secrets`` looks up ``password_env`` / ``key_env`` in an environment the caller hands in: the
secret itself is never in the file. ``plan`` compares a declaration with the cluster's current objects
and says what to create, update, leave alone, and (only when asked to ``prune``) delete; pruning never
deletes a job a service made at run time (``self.schedule``).

The format::

    [[security]]
    name = "partners"
    kind = "basic"                       # or "apikey": header = "X-API-Key" (optional), key_env = "..."
    username = "acme"
    password_env = "PARTNERS_PASSWORD"   # the name of an environment variable, never the secret

    [[channels]]
    name = "get-order"
    path = "/orders/{id}"
    service = "orders.get"
    methods = ["GET"]                    # optional, default ["GET"]
    security = "partners"                # optional

    [[jobs]]
    name = "nightly-report"
    service = "reports.build"
    cron = "0 2 * * *"                   # or interval = 30 (seconds) or { minutes = 5 }, or at = "2026-12-01T10:00:00Z"
    timezone = "Europe/Berlin"           # optional, cron only (default UTC)
    payload = { kind = "full" }          # optional, any TOML value but dates and times (JSON has none)
    misfire = "run_once"                 # optional, as are retries, backoff, paused; interval only: start, repeats

A job is checked as ``jobspec.parse_job`` checks one. A file cannot use ``in`` (it would move on every
apply) or the stored ``trigger`` form. A field the file leaves out takes its default, as for channels, except
an interval's ``start``: left out, it is one period after the job was written, and is not compared.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from ..channels import specs as channels
from ..channels.specs import DEFAULT_HEADER as DEFAULT_HEADER
from ..channels.specs import KINDS, SECRET_FIELD, ApiKeySecurity, BasicSecurity
from ..core.errors import SpliceError
from ..core.naming import check_service_name, closest
from ..core.validation import problems
from ._jobs import JobDeclaration as JobDeclaration
from ._jobs import job_differs, read_job

SECTIONS = ("security", "channels", "jobs")
SERVICE_ORIGIN = "service:"
"""How the origin of a job a service made at run time starts (``self.schedule``): pruning never deletes one."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise PydanticCustomError(
            "env_name", f"must name an environment variable (letters, digits, '_'), got {value!r}"
        )
    return value


EnvName = Annotated[
    str, AfterValidator(_env_name), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"})
]
_SYNTAX_PLACE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


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
    name: str
    path: str
    methods: tuple[str, ...]
    service: str
    security: str | None
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Declaration:
    """What a declaration file asks the cluster to hold."""

    file: str
    security: tuple[SecuritySpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    jobs: tuple[JobDeclaration, ...] = ()

    def secret_names(self) -> list[str]:
        """The environment variables the file's secrets come from, each once."""
        return sorted({s.secret_env for s in self.security})

    def problem(self, spec: SecuritySpec | ChannelSpec | JobDeclaration, key: str, message: str) -> DeclarationProblem:
        return DeclarationProblem(self.file, message, f"{spec.where}.{key}", spec.lines.get(key, spec.lines.get("")))


@dataclass(frozen=True)
class Change:
    kind: str
    """``security``, ``channel`` or ``job``."""
    name: str
    action: str
    """``create``, ``update``, ``delete`` or ``unchanged``."""
    fields: tuple[str, ...] = ()
    """For an update, the fields that differ (a secret is named, never shown)."""

    def __str__(self) -> str:
        what = "security definition" if self.kind == "security" else self.kind
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


# -- parsing -------------------------------------------------------------------------------------------------


def parse(text: str, file: str) -> Declaration:
    """The declaration in ``text`` (the contents of ``file``); raises ``DeclarationError`` naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError([_syntax_problem(file, exc)]) from None
    lines = _locate(text)
    problems: list[DeclarationProblem] = []
    for key in data:
        if key not in SECTIONS:
            hint = closest(key, list(SECTIONS))
            message = f"unknown section; did you mean [[{hint}]]?" if hint else "unknown section"
            problems.append(
                DeclarationProblem(file, f"{message} (a file declares {_listed()})", key, _top_line(text, key))
            )
    readers = {section: _items(data, section, file, lines, text, problems) for section in SECTIONS}
    security = tuple(s for r in readers["security"] if (s := _security(r)) is not None)
    channels = tuple(c for r in readers["channels"] if (c := _channel(r)) is not None)
    jobs = tuple(j for r in readers["jobs"] if (j := read_job(r)) is not None)
    for reader in (*readers["security"], *readers["channels"], *readers["jobs"]):
        problems.extend(reader.problems)
    problems.extend(_duplicates(file, security) + _duplicates(file, channels) + _duplicates(file, jobs))
    if problems:
        raise DeclarationError(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
    return Declaration(file, security, channels, jobs)


def _listed() -> str:
    headers = [f"[[{s}]]" for s in SECTIONS]
    return ", ".join(headers[:-1]) + " and " + headers[-1]


def _syntax_problem(file: str, exc: tomllib.TOMLDecodeError) -> DeclarationProblem:
    message = str(exc)
    place = _SYNTAX_PLACE.search(message)
    if place is None:
        return DeclarationProblem(file, f"not valid TOML: {message}")
    line, column = int(place.group(1)), int(place.group(2))
    return DeclarationProblem(file, f"not valid TOML: {message[: place.start()]}", line=line, column=column)


def _locate(text: str) -> dict[tuple[str, int], dict[str, int]]:
    """Best effort: the line of each ``[[section]]`` header (key ``""``) and of each key below it.

    tomllib keeps no positions, so this reads the usual layout (one key per line); an item written as an
    inline table is simply not found, and its problems come without a line.
    """
    found: dict[tuple[str, int], dict[str, int]] = {}
    counts: dict[str, int] = {}
    current: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _ARRAY_HEADER.match(line)
        if header:
            section = header.group(1)
            index = counts.get(section, 0)
            counts[section] = index + 1
            current = found[(section, index)] = {"": number}
        elif _TABLE_HEADER.match(line):
            current = None
        elif current is not None and (key := _KEY.match(line)):
            current.setdefault(key.group(1), number)
    return found


def _top_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\[\[?\s*{re.escape(key)}\s*\]\]?|{re.escape(key)}\s*=)")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


@dataclass
class _Reader:
    """Reads one ``[[section]]`` item, collecting its problems."""

    file: str
    where: str
    table: Mapping[str, Any]
    lines: dict[str, int]
    problems: list[DeclarationProblem] = field(default_factory=list)

    def problem(self, key: str, message: str) -> None:
        top = key.split(".", 1)[0].split("[", 1)[0]  # interval.minutes, payload[1]: the line of the key
        line = self.lines.get(top, self.lines.get(""))
        self.problems.append(DeclarationProblem(self.file, message, f"{self.where}.{key}" if key else self.where, line))

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {_toml_type(value)}")
            return None
        return value

    def name(self, key: str) -> str | None:
        value = self.text(key)
        problem = None if value is None else check_service_name(value)
        if problem:
            self.problem(key, problem.replace("a service name", "a name").replace("service name", "name"))
            return None
        return value

    def only(self, allowed: Collection[str], kind: str) -> None:
        for key in self.table:
            if key in allowed:
                continue
            if self.where.startswith("security") and key in ("password", "key", "secret", "token"):
                self.problem(key, f"secrets never come from the file: name an environment variable with {key}_env")
                continue
            hint = closest(key, list(allowed))
            suffix = f"; did you mean '{hint}'?" if hint else f" (known: {', '.join(sorted(allowed))})"
            self.problem(key, f"unknown field for {kind}{suffix}")


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _items(
    data: Mapping[str, Any],
    section: str,
    file: str,
    lines: dict[tuple[str, int], dict[str, int]],
    text: str,
    problems: list[DeclarationProblem],
) -> list[_Reader]:
    value = data.get(section, [])
    if not isinstance(value, list):
        message = f"must be an array of tables: write each item under its own [[{section}]] header"
        problems.append(DeclarationProblem(file, message, section, _top_line(text, section)))
        return []
    readers = []
    for index, table in enumerate(value):
        where, item_lines = f"{section}[{index}]", lines.get((section, index), {})
        if isinstance(table, dict):
            readers.append(_Reader(file, where, table, item_lines))
            continue
        line = item_lines.get("", _top_line(text, section))
        problems.append(DeclarationProblem(file, f"must be a table, got {_toml_type(table)}", where, line))
    return readers


class _DeclaredBasic(BasicSecurity):
    password_env: EnvName


class _DeclaredApiKey(ApiKeySecurity):
    key_env: EnvName


_DECLARED_SECURITY: TypeAdapter[_DeclaredBasic | _DeclaredApiKey] = TypeAdapter(
    Annotated[_DeclaredBasic | _DeclaredApiKey, Field(discriminator="kind")]
)
_SECRET_KEYS = ("password", "key", "secret", "token")


def _security(reader: _Reader) -> SecuritySpec | None:
    try:
        spec = _DECLARED_SECURITY.validate_python(reader.table)
    except ValidationError as exc:
        kind = reader.table.get("kind")
        model = _DeclaredBasic if kind == "basic" else _DeclaredApiKey if kind == "apikey" else None
        allowed = set(model.model_fields) if model else {*_DeclaredBasic.model_fields, *_DeclaredApiKey.model_fields}
        _report(reader, exc, allowed, f"kind '{kind}'" if model else "security")
        return None
    secret_env = spec.password_env if isinstance(spec, _DeclaredBasic) else spec.key_env
    return SecuritySpec(spec.name, spec.kind, spec.username, spec.header, secret_env, reader.where, reader.lines)


def _channel(reader: _Reader) -> ChannelSpec | None:
    try:
        spec = channels.ChannelSpec.model_validate(reader.table)
    except ValidationError as exc:
        _report(reader, exc, set(channels.ChannelSpec.model_fields), "channels")
        return None
    methods = tuple(spec.methods)
    return ChannelSpec(spec.name, spec.path, methods, spec.service, spec.security, reader.where, reader.lines)


def _report(reader: _Reader, exc: ValidationError, allowed: set[str], kind: str) -> None:
    """The model's problems as the file's, each at the line of its key (an unknown key with a hint)."""
    for problem in problems(exc, KINDS, _toml_type):
        key = problem.field
        if problem.message != "unknown field":
            reader.problem(key, problem.message)
        elif reader.where.startswith("security") and key in _SECRET_KEYS:
            reader.problem(key, f"secrets never come from the file: name an environment variable with {key}_env")
        else:
            hint = closest(key, sorted(allowed))
            suffix = f"; did you mean '{hint}'?" if hint else f" (known: {', '.join(sorted(allowed))})"
            reader.problem(key, f"unknown field for {kind}{suffix}")


def _duplicates(file: str, specs: Sequence[SecuritySpec | ChannelSpec | JobDeclaration]) -> list[DeclarationProblem]:
    seen: dict[str, str] = {}
    problems = []
    for spec in specs:
        if spec.name in seen:
            line = spec.lines.get("name", spec.lines.get(""))
            message = f"{spec.name!r} is declared twice (also at {seen[spec.name]})"
            problems.append(DeclarationProblem(file, message, f"{spec.where}.name", line))
        seen.setdefault(spec.name, spec.where)
    return problems


# -- secrets -------------------------------------------------------------------------------------------------


def resolve_secrets(declaration: Declaration, environ: Mapping[str, str], where: str) -> dict[str, str]:
    """Each security definition's secret, by definition name, from ``environ``.

    ``where`` says whose environment it is, for the message (``"the environment of splice apply"``,
    ``"server server1's environment"``). Raises ``DeclarationError`` for every variable that is unset or empty.
    """
    secrets: dict[str, str] = {}
    problems = []
    for spec in declaration.security:
        value = environ.get(spec.secret_env)
        key = f"{spec.secret_field}_env"
        if value is None:
            problems.append(declaration.problem(spec, key, f"{spec.secret_env} is not set in {where}"))
        elif not value:
            problems.append(declaration.problem(spec, key, f"{spec.secret_env} is empty in {where}"))
        else:
            secrets[spec.name] = value
    if problems:
        raise DeclarationError(problems)
    return secrets


# -- planning ------------------------------------------------------------------------------------------------


def plan(
    declaration: Declaration,
    channels: Sequence[Mapping[str, Any]],
    security: Sequence[Mapping[str, Any]],
    secret_matches: Mapping[str, bool],
    prune: bool = False,
    services: Collection[str] | None = None,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> Plan:
    """What makes the cluster hold ``declaration``.

    ``channels``, ``security`` and ``jobs`` are the cluster's current objects (as the repository lists them);
    ``secret_matches[name]`` says whether the declared secret of an existing definition matches its stored
    hash (a missing entry counts as different). Objects the file does not declare are deleted only with
    ``prune``, and never a job a service made at run time. ``services``, when given, are the deployed
    services, for warnings about channels and jobs that name none of them. Raises ``DeclarationError`` if a
    channel names a security definition that would not exist.
    """
    current_sec = {str(s["name"]): s for s in security}
    current_ch = {str(c["name"]): c for c in channels}
    current_jobs = {str(j["name"]): j for j in jobs}
    declared_sec = {s.name for s in declaration.security}
    declared_ch = {c.name for c in declaration.channels}
    declared_jobs = {j.name for j in declaration.jobs}
    _check_references(declaration, set(current_sec), prune)
    changes = [_security_change(spec, current_sec.get(spec.name), secret_matches) for spec in declaration.security]
    changes += [_channel_change(spec, current_ch.get(spec.name)) for spec in declaration.channels]
    changes += [_job_change(job, current_jobs.get(job.name)) for job in declaration.jobs]
    if prune:
        changes += [Change("channel", name, "delete") for name in sorted(set(current_ch) - declared_ch)]
        changes += [Change("security", name, "delete") for name in sorted(set(current_sec) - declared_sec)]
        doomed = sorted(
            name for name, row in current_jobs.items() if name not in declared_jobs and not _by_service(row)
        )
        changes += [Change("job", name, "delete") for name in doomed]
    warnings = []
    if services is not None:
        named: list[tuple[str, ChannelSpec | JobDeclaration]] = [("channel", c) for c in declaration.channels]
        for what, spec in named + [("job", j) for j in declaration.jobs]:
            if spec.service not in services:
                warnings.append(f"{what} {spec.name}: no service named '{spec.service}' is deployed yet")
    for job in declaration.jobs:
        if job.name in current_jobs and _by_service(current_jobs[job.name]):
            origin = current_jobs[job.name]["origin"]
            warnings.append(f"job {job.name}: made at run time by {origin}; the file now changes it")
    return Plan(declaration.file, tuple(changes), tuple(warnings))


def _by_service(job: Mapping[str, Any]) -> bool:
    return str(job.get("origin") or "").startswith(SERVICE_ORIGIN)


def _check_references(declaration: Declaration, existing: set[str], prune: bool) -> None:
    declared = {s.name for s in declaration.security}
    problems = []
    for spec in declaration.channels:
        if spec.security is None or spec.security in declared:
            continue
        if spec.security not in existing:
            message = f"no security definition named '{spec.security}' is declared in the file or exists in the cluster"
            problems.append(declaration.problem(spec, "security", message))
        elif prune:
            message = f"security definition '{spec.security}' is not declared in the file, so pruning would delete it"
            problems.append(declaration.problem(spec, "security", message))
    if problems:
        raise DeclarationError(problems)


def _security_change(
    spec: SecuritySpec, current: Mapping[str, Any] | None, secret_matches: Mapping[str, bool]
) -> Change:
    if current is None:
        return Change("security", spec.name, "create")
    differs = [
        key
        for key, value in (("kind", spec.kind), ("username", spec.username), ("header", spec.header))
        if current.get(key) != value
    ]
    if not secret_matches.get(spec.name, False):
        differs.append(spec.secret_field)
    return Change("security", spec.name, "update" if differs else "unchanged", tuple(differs))


def _channel_change(spec: ChannelSpec, current: Mapping[str, Any] | None) -> Change:
    if current is None:
        return Change("channel", spec.name, "create")
    wanted = {"path": spec.path, "methods": sorted(spec.methods), "service": spec.service, "security": spec.security}
    have = {**current, "methods": sorted(current.get("methods") or [])}
    differs = tuple(key for key, value in wanted.items() if have.get(key) != value)
    return Change("channel", spec.name, "update" if differs else "unchanged", differs)


def _job_change(job: JobDeclaration, current: Mapping[str, Any] | None) -> Change:
    if current is None:
        return Change("job", job.name, "create")
    differs = job_differs(job, current)
    return Change("job", job.name, "update" if differs else "unchanged", differs)
