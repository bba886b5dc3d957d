"""Commands that talk to a running cluster through the admin API: deploy, invoke, and what commands share
(a client of the cluster, each server's outcome, ``--option KEY=VALUE``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

from ..client import AdminClient, ClientError, Unreachable, ping
from ..config import load_settings, split_member
from .cluster import CliError, read_token


def client_for(directory: Path) -> AdminClient:
    """A client of the first server of the cluster that answers."""
    settings = load_settings(directory, os.environ)
    token = read_token(settings)
    for server in settings.servers:
        if ping(server.url, 1.0) is not None:
            return AdminClient(server.url, token, actor=_who())
    urls = ", ".join(s.url for s in settings.servers)
    raise CliError(f"no server of {settings.directory} answers ({urls}); start it with 'splice start {directory}'")


def expand(files: Sequence[str]) -> list[str]:
    """Files as given, with each directory replaced by the ``.py`` files below it (hidden ones and caches left out)."""
    out: list[str] = []
    for file in files:
        path = Path(file)
        if not path.is_dir():
            out.append(file)
            continue
        for found in sorted(path.rglob("*.py")):
            parts = found.relative_to(path).parts
            if not any(p.startswith(".") or p == "__pycache__" for p in parts):
                out.append(str(found))
    return out


def module_paths(files: Sequence[str], root: Path) -> list[tuple[str, str]]:
    """(file as given, module path relative to ``root``) for each file; refuses files outside the root."""
    root = root.resolve()
    out = []
    for file in expand(files):
        resolved = Path(file).resolve()
        try:
            relative = resolved.relative_to(root)
        except ValueError:
            raise CliError(f"{file}: not inside the project root {root} (use --root)") from None
        out.append((file, relative.as_posix()))
    return out


def server_lines(answer: dict[str, Any]) -> list[str]:
    """One line per server of a cluster-wide answer: deployed (the sequence it reached), failed, timed out, down;
    one per worker of a server of several (``server1 worker 2: deployed (sequence 7)``)."""
    lines = []
    for server in answer.get("servers", []):
        detail = server.get("error") or (f"sequence {server['sequence']}" if server.get("sequence") is not None else "")
        ms = f", {server['ms']:.1f} ms" if isinstance(server.get("ms"), int | float) else ""
        status = str(server["status"]).replace("_", " ")
        lines.append(f"  {_member(str(server['server']))}: {status}" + (f" ({detail}{ms})" if detail else ""))
    return lines


def _member(name: str) -> str:
    """``server1.w2`` -> ``server1 worker 2`` (a worker of a server of several); a server's own name as it is."""
    server, worker = split_member(name)
    return name if worker is None else f"{server} worker {worker}"


def deploy(files: Sequence[str], directory: Path, root: Path) -> tuple[list[str], int]:
    """Lines to print, and the exit code: 0 deployed everywhere, 1 refused, 3 not confirmed by every server."""
    missing = next((file for file in files if not Path(file).exists()), None)
    if missing is not None:  # before the root is looked at: a missing file is outside every root
        raise CliError(f"no such file: {missing}")
    pairs = module_paths(files, root)
    modules = []
    for file, path in pairs:
        try:
            source = Path(file).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise CliError(f"no such file: {file}") from None  # gone since it was looked for
        except UnicodeDecodeError as exc:
            raise CliError(f"{file}: not valid UTF-8 at byte {exc.start}") from None
        modules.append({"path": path, "source": source})
    client = client_for(directory)
    try:
        answer = client.call("POST", "/splice/admin/deploy", {"modules": modules, "deployed_by": _who()})
    except Unreachable:
        raise
    except ClientError as exc:
        return _problems(exc, dict((p, f) for f, p in pairs)), 1
    lines = []
    for module in answer["modules"]:
        services = ", ".join(module["services"])
        lines.append(f"deployed {module['path']} v{module['version']} (sequence {answer['sequence']}): {services}")
    lines.append(f"done in {answer['timings']['total_ms']:.1f} ms on {answer['server']}")
    lines += server_lines(answer)
    if answer.get("status") == "partial":
        lines.append("splice: the deploy did not reach every server (those catch up from the ODB when they can)")
        return lines, 3
    return lines, 0


def _who() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _problems(exc: ClientError, file_of: dict[str, str]) -> list[str]:
    problems = exc.body.get("error", {}).get("problems")
    if not problems:
        return [f"error: {exc}"]
    lines = []
    for problem in problems:
        # A refused deploy names a module ("path"); a refused request body names a field ("field").
        place = str(problem.get("path") or problem.get("field") or "request")
        where = file_of.get(place, place)
        if problem.get("line") is not None:
            where += f":{problem['line']}"
            if problem.get("column") is not None:
                where += f":{problem['column']}"
        lines.append(f"{where}: {problem['message']}")
    return lines


def undeploy(files: Sequence[str], directory: Path, root: Path) -> list[str]:
    paths = [path for _, path in module_paths(files, root)]
    answer = client_for(directory).call("POST", "/splice/admin/undeploy", {"paths": paths})
    return [f"undeployed {path}" for path in answer["paths"]] + [
        f"removed services: {', '.join(answer['services']) or '-'}"
    ]


def invoke(name: str, payload: str | None, directory: Path) -> Any:
    try:
        parsed = None if payload is None else json.loads(payload)
    except ValueError as exc:
        raise CliError(f"--payload is not valid JSON: {exc}") from None
    return client_for(directory).call("POST", "/splice/admin/invoke", {"service": name, "payload": parsed})["payload"]


def call(directory: Path, method: str, path: str, body: Any = None) -> dict[str, Any]:
    return client_for(directory).call(method, path, body)


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def parse_options(pairs: Sequence[str], model: type[BaseModel], reserved: Mapping[str, str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a spec's fields: a value is JSON when it parses (numbers, true/false,
    lists, objects), else the text as given, and stays the text as given where ``model`` takes only text (so
    ``routing_key=123`` is the string a field of text wants, not a number it would refuse).

    ``reserved`` maps the fields that have a flag of their own (or must not be on a command line) to what to
    use instead; such a field given here is refused with that advice. Unknown keys are left to the server,
    whose answer names the field."""
    properties = model.model_json_schema().get("properties", {})
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise CliError(f"--option wants KEY=VALUE, got {pair!r}", 2)
        if key in reserved:
            raise CliError(f"--option {key}: {reserved[key]}", 2)
        if key in options:
            raise CliError(f"--option {key} is given twice", 2)
        options[key] = _value(text, properties.get(key, {}))
    return options


def _value(text: str, schema: dict[str, Any]) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    kinds = {schema.get("type")} | {alt.get("type") for alt in schema.get("anyOf", ())}
    kind = "null" if value is None else _JSON_TYPES.get(type(value))
    if kind == "integer" and "number" in kinds:
        return value
    return text if "string" in kinds and kind not in kinds else value


def unknown_option(exc: ClientError, model: type[BaseModel], flagged: Sequence[str]) -> CliError | None:
    """The server's refusal of an unknown field with the options ``model`` does take (leaving out the fields
    that have flags of their own), or ``None`` if the refusal is about something else."""
    problems = exc.body.get("error", {}).get("problems") or []
    if not any(problem.get("message") == "unknown field" for problem in problems):
        return None
    known = [name for name in model.model_fields if name not in flagged]
    if not known:
        return CliError(f"{exc} (it takes no --option)")
    return CliError(f"{exc} (--option takes: {', '.join(known)})")


def a(word: str) -> str:
    """``word`` after its indefinite article: "a rest channel", "an amqp channel"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
