"""What is wrong in one file, given the workspace's services and the cluster's: pure functions, no I/O.

``diagnose`` returns ``Problem`` values; the server turns them into LSP diagnostics. An unknown service
in an invoke is a warning with a "did you mean" (its suggestion travels in ``Problem.suggestion`` for
the quick fix); two services of one name are an error on both; so are a missing ``handle``, a hook
with a wrong signature, a bad explicit name, a payload literal missing a required input field and a
syntax error; an input field a service does not declare is a warning. So is an outgoing connection
``self.out.<kind>["name"]`` the cluster does not define for that kind, when the cluster said which it
defines, and a topic ``self.publish("name"`` the cluster does not have, when it listed its topics. A file
that does not parse gets its syntax error and the problems of what could be read of it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from splice.server.core import check_service_name, closest

from .index import Field, InvokeCall, ModuleIndex, Range, ServiceDef
from .outgoing import Connection, OutgoingUse, of_kind, with_article
from .topics import Topic, TopicUse

ERROR = "error"
WARNING = "warning"

UNKNOWN_SERVICE = "unknown-service"
DUPLICATE_SERVICE = "duplicate-service"
NO_HANDLE = "no-handle"
BAD_HOOK = "bad-hook-signature"
BAD_NAME = "bad-service-name"
MISSING_FIELD = "missing-input-field"
UNKNOWN_FIELD = "unknown-input-field"
SYNTAX = "syntax-error"
UNKNOWN_CONNECTION = "unknown-connection"
CONNECTION_KIND = "connection-kind"
UNKNOWN_TOPIC = "unknown-topic"


@dataclass(frozen=True)
class Problem:
    range: Range
    severity: str
    code: str
    message: str
    suggestion: str | None = None
    """For ``unknown-service``, ``unknown-input-field`` and ``unknown-connection``: the name the quick fix puts in
    its place."""


def diagnose(
    module: ModuleIndex,
    services: Mapping[str, Sequence[ServiceDef]],
    cluster: Mapping[str, tuple[Field, ...] | None],
    connections: Collection[Connection] | None = None,
    topics: Collection[Topic] | None = None,
) -> list[Problem]:
    """Every problem of ``module``. ``services``: the workspace's (by name); ``cluster``: deployed name -> input;
    ``connections`` and ``topics``: the cluster's, ``None`` when not known (then none is checked)."""
    problems = definition_problems(module, services)
    if (err := module.syntax_error) is not None:
        problems.append(Problem(err.range, ERROR, SYNTAX, f"syntax error: {err.message}"))
    known = set(services) | set(cluster)
    for call in module.invokes:
        problems += invoke_problems(call, services, cluster, known)
    if connections is not None:
        problems += [p for use in module.outgoing if (p := connection_problem(use, connections)) is not None]
    if topics is not None:
        problems += [p for use in module.topics if (p := topic_problem(use, topics)) is not None]
    return sorted(problems, key=lambda p: (p.range.line, p.range.start, p.code))


def definition_problems(module: ModuleIndex, services: Mapping[str, Sequence[ServiceDef]]) -> list[Problem]:
    out: list[Problem] = []
    for name, definitions in services.items():
        for definition in definitions:
            if definition.path != module.path:
                continue
            cls = definition.cls
            if len(definitions) > 1:
                others = ", ".join(f"{d.path} ({d.cls.name})" for d in definitions if d is not definition)
                where = cls.explicit_name_range or cls.range
                out.append(
                    Problem(where, ERROR, DUPLICATE_SERVICE, f"service name '{name}' is also defined in {others}")
                )
            if not definition.has_handle and not cls.unparsed:  # handle may be on the line that does not parse
                out.append(Problem(cls.range, ERROR, NO_HANDLE, f"class {cls.name} does not define handle()"))
            for message, where in cls.hook_problems:
                out.append(Problem(where, ERROR, BAD_HOOK, f"class {cls.name}: {message}"))
            if cls.explicit_name is not None and (bad := check_service_name(cls.explicit_name)):
                out.append(Problem(cls.explicit_name_range or cls.range, ERROR, BAD_NAME, bad))
    return out


def invoke_problems(
    call: InvokeCall,
    services: Mapping[str, Sequence[ServiceDef]],
    cluster: Mapping[str, tuple[Field, ...] | None],
    known: set[str],
) -> list[Problem]:
    if call.service not in known:
        guess = closest(call.service, known)
        hint = f"; did you mean '{guess}'?" if guess else ""
        message = f"no service named '{call.service}' in the workspace or the cluster{hint}"
        return [Problem(call.range, WARNING, UNKNOWN_SERVICE, message, guess)]
    fields = input_fields(call.service, services, cluster)
    if fields is None or call.keys is None:
        return []
    out: list[Problem] = []
    given = {key.name for key in call.keys}
    missing = [f.name for f in fields if f.required and f.name not in given]
    if missing:
        listed = ", ".join(f"'{m}'" for m in missing)
        plural = "s" if len(missing) > 1 else ""
        out.append(Problem(call.range, ERROR, MISSING_FIELD, f"'{call.service}' requires input field{plural} {listed}"))
    declared = {f.name for f in fields}
    for key in call.keys:
        if key.name not in declared:
            guess = closest(key.name, declared)
            hint = f"; did you mean '{guess}'?" if guess else ""
            message = f"'{call.service}' declares no input field '{key.name}'{hint}"
            out.append(Problem(key.range, WARNING, UNKNOWN_FIELD, message, guess))
    return out


def connection_problem(use: OutgoingUse, connections: Collection[Connection]) -> Problem | None:
    """``self.out.<kind>["name"]`` naming no connection of that kind: a warning, with a did-you-mean or its kind."""
    same = [c.name for c in of_kind(connections, use.kind)]
    if use.name in same:
        return None
    other = sorted(c.kind for c in connections if c.name == use.name)
    if other:
        message = f"'{use.name}' is {with_article(other[0])} connection, not {use.kind}"
        return Problem(use.range, WARNING, CONNECTION_KIND, message)
    guess = closest(use.name, same)
    hint = f"; did you mean '{guess}'?" if guess else ""
    message = f"no {use.kind} connection named '{use.name}' in the cluster{hint}"
    return Problem(use.range, WARNING, UNKNOWN_CONNECTION, message, guess)


def topic_problem(use: TopicUse, topics: Collection[Topic]) -> Problem | None:
    """``self.publish("name"`` naming no topic of the cluster: a warning, with a did-you-mean."""
    names = [t.name for t in topics]
    if use.name in names:
        return None
    guess = closest(use.name, names)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return Problem(use.range, WARNING, UNKNOWN_TOPIC, f"no topic '{use.name}' in the cluster{hint}", guess)


def input_fields(
    name: str, services: Mapping[str, Sequence[ServiceDef]], cluster: Mapping[str, tuple[Field, ...] | None]
) -> tuple[Field, ...] | None:
    """A service's declared input: the workspace's definition first (what is about to be deployed), else the cluster's.

    ``None`` when not known (no ``Input`` declared, or only inherited from outside the workspace).
    """
    definitions = services.get(name)
    if definitions:
        return definitions[0].input
    return cluster.get(name)


__all__ = [
    "ERROR",
    "WARNING",
    "Problem",
    "connection_problem",
    "definition_problems",
    "diagnose",
    "input_fields",
    "invoke_problems",
    "topic_problem",
]
