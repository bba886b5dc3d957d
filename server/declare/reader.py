"""Configuration as code: read a declaration file (``splice.toml``) and plan what applying it changes.

Pure, no I/O. ``parse`` turns the file's text into a ``Declaration``, naming every problem at once with
the file, the line when it can be found, and the field (``splice.toml:12: channels[1].path: ...``).
``resolve_secrets`` looks up ``password_env`` / ``key_env`` / ``token_env`` in an environment the caller hands
in: the secret itself is never in the file. ``plan`` compares a declaration with the cluster's current objects
and says what to create, update, leave alone, and (only when asked to ``prune``) delete; pruning never
deletes a job a service made at run time (``self.schedule``).

The format::

    [[security]]
    name = "partners"
    kind = "basic"                       # or "apikey": header = "X-API-Key" (optional), key_env = "..."
    username = "acme"
    password_env = "PARTNERS_PASSWORD"   # the name of an environment variable, never the secret

    [[outgoing]]
    name = "billing"
    kind = "rest"                        # or "sql", "redis", "amqp": the fields of the kind's spec
    address = "https://billing.example.com/api"
    token_env = "BILLING_TOKEN"          # password_env, key_env or token_env: the kind's secrets, by variable
    timeout = 5                          # optional, as are the kind's other options

    [[channels]]
    name = "get-order"
    path = "/orders/{id}"
    service = "orders.get"
    methods = ["GET"]                    # optional, default ["GET"]
    security = "partners"                # optional

    [[channels]]
    name = "orders-in"
    kind = "amqp"                        # default "rest"; also "websocket", "jsonrpc", "file": the kind's fields
    service = "orders.take"
    connection = "broker"                # an amqp [[outgoing]] of the file, or one the cluster has
    queue = "orders"

    [[jobs]]
    name = "nightly-report"
    service = "reports.build"
    cron = "0 2 * * *"                   # or interval = 30 (seconds) or { minutes = 5 }, or at = "2026-12-01T10:00:00Z"
    timezone = "Europe/Berlin"           # optional, cron only (default UTC)
    payload = { kind = "full" }          # optional, any TOML value but dates and times (JSON has none)
    misfire = "run_once"                 # optional, as are retries, backoff, paused; interval only: start, repeats

Topics, subscriptions, topic permissions and caches (``[[topics]]``, ``[[subscriptions]]``,
``[[topic_permissions]]``, ``[[caches]]``) are read, checked and compared by ``_pubsub``, which shows their format.

A channel is checked with its kind's spec (``splice.server.channels.specs``), an outgoing connection with its
kind's (``splice.server.connections``): see ``_outgoing`` for how its secrets are named and compared. A job is
checked as ``jobspec.parse_job`` checks one. A file cannot use ``in`` (it would move on every
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
from ..channels.specs import KINDS, ApiKeySecurity, BasicSecurity
from ..core.naming import check_service_name, closest
from ..core.validation import problems
from ._jobs import JobDeclaration as JobDeclaration
from ._jobs import job_differs, read_job
from ._model import Change as Change
from ._model import ChannelSpec as ChannelSpec
from ._model import Declaration as Declaration
from ._model import DeclarationError as DeclarationError
from ._model import DeclarationProblem as DeclarationProblem
from ._model import Definition as Definition
from ._model import Located
from ._model import Plan as Plan
from ._model import SealedSecrets as SealedSecrets
from ._model import Secrets as Secrets
from ._model import SecuritySpec as SecuritySpec
from ._outgoing import ENV_NAME, a, outgoing_differs, read_outgoing
from ._outgoing import OutgoingDeclaration as OutgoingDeclaration
from ._pubsub import SECTIONS as DEFINED
from ._pubsub import Current, check_definitions, definition_changes, definition_warnings, duplicates, read_definition

SECTIONS = ("security", "outgoing", "channels", "jobs", *DEFINED)
SERVICE_ORIGIN = "service:"
"""How the origin of a job a service made at run time starts (``self.schedule``): pruning never deletes one."""

CHANNEL_MODELS: dict[str, type[channels.ChannelOfAnyKind]] = {
    "rest": channels.ChannelSpec,
    "websocket": channels.WebSocketChannel,
    "jsonrpc": channels.JsonRpcChannel,
    "amqp": channels.AmqpChannel,
    "file": channels.FileChannel,
}


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
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


# -- parsing -------------------------------------------------------------------------------------------------


def parse(text: str, file: str) -> Declaration:
    """The declaration in ``text`` (the contents of ``file``); raises ``DeclarationError`` naming every problem."""
    try:
        return _parse(text, file)
    except RecursionError:  # tomllib, and the checks after it, recurse once per level of nesting
        message = "arrays or inline tables are nested too deeply to read (a few levels are all a declaration needs)"
        raise DeclarationError([DeclarationProblem(file, message)]) from None


def _parse(text: str, file: str) -> Declaration:
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
    outgoing = tuple(o for r in readers["outgoing"] if (o := read_outgoing(r)) is not None)
    channels = tuple(c for r in readers["channels"] if (c := _channel(r)) is not None)
    jobs = tuple(j for r in readers["jobs"] if (j := read_job(r)) is not None)
    defined = {s: tuple(d for r in readers[s] if (d := read_definition(s, r)) is not None) for s in DEFINED}
    for section in SECTIONS:
        for reader in readers[section]:
            problems.extend(reader.problems)
    for specs in (security, outgoing, channels, jobs):
        problems.extend(_duplicates(file, specs))
    for definitions in defined.values():
        problems.extend(duplicates(file, definitions))
    if problems:
        raise DeclarationError(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
    return Declaration(file, security, channels, jobs, outgoing, **defined)


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
    for number, line in enumerate(_lines(text), start=1):
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
    for number, line in enumerate(_lines(text), start=1):
        if pattern.match(line):
            return number
    return None


def _lines(text: str) -> list[str]:
    """The file's lines as TOML counts them: ended by '\n' only (``splitlines`` also splits at '\x85', '\u2028',
    form feeds... which a string value may hold, and then every line number below one is off)."""
    return text.split("\n")


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
            self.unknown(key, allowed, kind)

    def unknown(self, key: str, allowed: Collection[str], kind: str) -> None:
        hint = closest(key, sorted(allowed))
        suffix = f"; did you mean '{hint}'?" if hint else f" (known: {', '.join(sorted(allowed))})"
        self.problem(key, f"unknown field for {kind}{suffix}")

    def report(self, exc: ValidationError, allowed: Collection[str], kind: str) -> None:
        """A model's problems as the file's, each at the line of its key (an unknown key with a hint)."""
        for found in problems(exc, KINDS, _toml_type):
            key = found.field
            if found.message != "unknown field":
                self.problem(key, found.message)
            elif self.where.startswith("security") and key in _SECRET_KEYS:
                self.problem(key, f"secrets never come from the file: name an environment variable with {key}_env")
            else:
                self.unknown(key, allowed, kind)


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
        reader.report(exc, allowed, f"kind '{kind}'" if model else "security")
        return None
    secret_env = spec.password_env if isinstance(spec, _DeclaredBasic) else spec.key_env
    return SecuritySpec(spec.name, spec.kind, spec.username, spec.header, secret_env, reader.where, reader.lines)


def _channel(reader: _Reader) -> ChannelSpec | None:
    kind = reader.table.get("kind", "rest")
    model = CHANNEL_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = closest(kind, list(CHANNEL_MODELS)) if isinstance(kind, str) else None
        suffix = f"; did you mean '{hint}'?" if hint else ""
        reader.problem("kind", f"must be one of {', '.join(CHANNEL_MODELS)}, got {kind!r}{suffix}")
        return None
    try:
        spec = model.model_validate(reader.table)
    except ValidationError as exc:
        reader.report(exc, set(model.model_fields), "channels" if kind == "rest" else f"{a(kind)} channel")
        return None
    c = channels.channel_columns(spec)
    methods, options = tuple(c["methods"]), c["options"] or {}
    return ChannelSpec(
        spec.name, c["path"], methods, c["service"], c["security"], kind, options, reader.where, reader.lines
    )


def _duplicates(file: str, specs: Sequence[Located]) -> list[DeclarationProblem]:
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


def resolve_secrets(declaration: Declaration, environ: Mapping[str, str], where: str) -> Secrets:
    """Each security definition's and outgoing connection's secrets, from ``environ``.

    ``where`` says whose environment it is, for the message (``"the environment of splice apply"``,
    ``"server server1's environment"``). Raises ``DeclarationError`` for every variable that is unset or empty.
    """
    problems: list[DeclarationProblem] = []

    def look_up(spec: Located, key: str, variable: str) -> str | None:
        value = environ.get(variable)
        if not value:
            state = "is not set" if value is None else "is empty"
            problems.append(declaration.problem(spec, key, f"{variable} {state} in {where}"))
        return value or None

    security = {
        spec.name: value
        for spec in declaration.security
        if (value := look_up(spec, f"{spec.secret_field}_env", spec.secret_env)) is not None
    }
    outgoing = {
        spec.name: {
            secret: value
            for secret, variable in spec.secret_envs.items()
            if (value := look_up(spec, f"{secret}_env", variable)) is not None
        }
        for spec in declaration.outgoing
    }
    if problems:
        raise DeclarationError(problems)
    return Secrets(security, outgoing)


# -- planning ------------------------------------------------------------------------------------------------


def plan(
    declaration: Declaration,
    channels: Sequence[Mapping[str, Any]],
    security: Sequence[Mapping[str, Any]],
    secret_matches: Mapping[str, bool],
    prune: bool = False,
    services: Collection[str] | None = None,
    jobs: Sequence[Mapping[str, Any]] = (),
    outgoing: Sequence[Mapping[str, Any]] = (),
    stale_secrets: Mapping[str, Collection[str]] | None = None,
    definitions: Current | None = None,
) -> Plan:
    """What makes the cluster hold ``declaration``.

    ``channels``, ``security``, ``jobs`` and ``outgoing`` are the cluster's current objects (as the repository
    lists them); ``secret_matches[name]`` says whether the declared secret of an existing security definition
    matches its stored hash, ``stale_secrets[name]`` which secrets of an existing outgoing connection differ from
    the stored ones (a missing entry counts as different, in both); ``definitions`` are the cluster's topics,
    subscriptions, topic permissions and caches by section. Objects the file does not declare are deleted
    only with ``prune``, and never a job a service made at run time. ``services``, when given, are the deployed
    services, for warnings about channels and jobs that name none of them. Raises ``DeclarationError`` if a
    channel names a security definition or an AMQP connection that would not exist (and for what
    ``_pubsub.check_definitions`` finds).
    """
    current_sec = {str(s["name"]): s for s in security}
    current_out = {str(o["name"]): o for o in outgoing}
    current_ch = {str(c["name"]): c for c in channels}
    current_jobs = {str(j["name"]): j for j in jobs}
    defined = definitions or {}
    out_kinds = {name: str(o["kind"]) for name, o in current_out.items()}
    found = check_definitions(declaration, defined, set(current_sec), out_kinds, prune)
    _check_references(declaration, set(current_sec), out_kinds, prune, found)
    changes = [_security_change(spec, current_sec.get(spec.name), secret_matches) for spec in declaration.security]
    stale = stale_secrets or {}
    changes += [_outgoing_change(spec, current_out.get(spec.name), stale) for spec in declaration.outgoing]
    changes += [_channel_change(spec, current_ch.get(spec.name)) for spec in declaration.channels]
    changes += [_job_change(job, current_jobs.get(job.name)) for job in declaration.jobs]
    changes += definition_changes(declaration, defined, prune)
    if prune:
        changes += _deletions(declaration, current_ch, current_sec, current_out, current_jobs)
    warnings = []
    if services is not None:
        named: list[tuple[str, ChannelSpec | JobDeclaration]] = [("channel", c) for c in declaration.channels]
        for what, spec in named + [("job", j) for j in declaration.jobs]:
            if spec.service and spec.service not in services:
                warnings.append(f"{what} {spec.name}: no service named '{spec.service}' is deployed yet")
    for job in declaration.jobs:
        if job.name in current_jobs and _by_service(current_jobs[job.name]):
            origin = current_jobs[job.name]["origin"]
            warnings.append(f"job {job.name}: made at run time by {origin}; the file now changes it")
    warnings += definition_warnings(declaration, defined, changes, services)
    return Plan(declaration.file, tuple(changes), tuple(warnings))


def _deletions(
    declaration: Declaration,
    channels: Mapping[str, Any],
    security: Mapping[str, Any],
    outgoing: Mapping[str, Any],
    jobs: Mapping[str, Mapping[str, Any]],
) -> list[Change]:
    """What pruning deletes: every current object the file does not declare, but jobs services made."""
    kept = {
        "channel": {c.name for c in declaration.channels},
        "security": {s.name for s in declaration.security},
        "outgoing": {o.name for o in declaration.outgoing},
        "job": {j.name for j in declaration.jobs} | {name for name, row in jobs.items() if _by_service(row)},
    }
    current = {"channel": channels, "security": security, "outgoing": outgoing, "job": jobs}
    return [Change(kind, name, "delete") for kind, names in current.items() for name in sorted(set(names) - kept[kind])]


def _by_service(job: Mapping[str, Any]) -> bool:
    return str(job.get("origin") or "").startswith(SERVICE_ORIGIN)


def _check_references(
    declaration: Declaration,
    security: set[str],
    outgoing: Mapping[str, str],
    prune: bool,
    found: Sequence[DeclarationProblem] = (),
) -> None:
    """Each channel's security definition, and each AMQP channel's connection, is in the file or the cluster; raises
    for these problems and those ``found`` before."""
    declared_sec = {s.name for s in declaration.security}
    declared_out = {o.name: o.kind for o in declaration.outgoing}
    problems = []
    for spec in declaration.channels:
        if spec.security is not None and spec.security not in declared_sec:
            message = _missing("security definition", spec.security, spec.security in security, prune)
            problems.append(declaration.problem(spec, "security", message))
        name = spec.connection
        if spec.kind != "amqp" or name is None:
            continue
        kind = declared_out.get(name, outgoing.get(name))
        if kind is not None and kind != "amqp":
            message = f"outgoing connection '{name}' is of kind {kind}: an AMQP channel consumes through an amqp one"
            problems.append(declaration.problem(spec, "connection", message))
        elif name not in declared_out:
            message = _missing("amqp outgoing connection", name, kind is not None, prune).replace(" definition", "")
            problems.append(declaration.problem(spec, "connection", message))
    problems = [p for p in [*problems, *found] if p.message]
    if problems:
        raise DeclarationError(problems)


def _missing(what: str, name: str, exists: bool, prune: bool) -> str:
    """What is wrong with naming ``what`` ``name`` the file does not declare ('' if nothing)."""
    if not exists:
        return f"no {what} named '{name}' is declared in the file or exists in the cluster"
    if prune:
        return f"{what} '{name}' is not declared in the file, so pruning would delete it"
    return ""


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


def _outgoing_change(
    spec: OutgoingDeclaration, current: Mapping[str, Any] | None, stale: Mapping[str, Collection[str]]
) -> Change:
    if current is None:
        return Change("outgoing", spec.name, "create")
    differs = outgoing_differs(spec, current, stale)
    return Change("outgoing", spec.name, "update" if differs else "unchanged", differs)


def _channel_change(spec: ChannelSpec, current: Mapping[str, Any] | None) -> Change:
    if current is None:
        return Change("channel", spec.name, "create")
    wanted = {
        "kind": spec.kind,
        "path": spec.path,
        "methods": sorted(spec.methods),
        "service": spec.service,
        "security": spec.security,
        **spec.options,
    }
    have = {**(current.get("options") or {}), **current, "methods": sorted(current.get("methods") or [])}
    have["kind"] = have.get("kind") or "rest"
    differs = [key for key, value in wanted.items() if have.get(key) != value]
    differs += [key for key in current.get("options") or {} if key not in wanted]
    return Change("channel", spec.name, "update" if differs else "unchanged", tuple(differs))


def _job_change(job: JobDeclaration, current: Mapping[str, Any] | None) -> Change:
    if current is None:
        return Change("job", job.name, "create")
    differs = job_differs(job, current)
    return Change("job", job.name, "update" if differs else "unchanged", differs)
