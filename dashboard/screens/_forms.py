"""Forms generated from the admin API's own OpenAPI document, and submitted forms turned back into its JSON bodies.

The channel, security and outgoing screens never hand-write a kind's fields: they read the request body schema
of ``POST /channels``, ``POST /security``, ``POST /outgoing`` (one schema per kind, told apart by ``kind``), so a
kind or an option the servers learn shows up here by itself. Nothing is validated here: empty fields are left
out (the kind's default applies), numbers, booleans, lists and header maps are converted by the field's
declared type, and whatever does not convert is sent as typed, for the admin API to refuse in its own words.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..admin import AdminApi, AdminError
from ..auth import current_user

SECRETS = frozenset({"password", "key", "token"})
"""Fields holding a secret: ``type=password`` inputs, never filled in, never sent back in a page."""
CACHE_SECONDS = 300.0
_INTEGER = re.compile(r"[+-]?\d+")
_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class FormField:
    """One input of a kind's form, from one property of its JSON schema."""

    name: str
    widget: str
    """text, integer, number, boolean, choice, list, mapping or secret."""
    required: bool
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    example: str = ""

    @property
    def hint(self) -> str:
        """What the input says when empty: its default, or how to type a list or a map."""
        if self.widget == "list":
            shown = ", ".join(str(v) for v in self.default) if isinstance(self.default, list) else ""
            return f"comma-separated{f' (default {shown})' if shown else ''}"
        if self.widget == "mapping":
            return "one 'Name: value' a line"
        if self.widget in ("boolean", "choice", "secret"):
            return ""
        if self.default is None or self.default == "":
            return f"e.g. {self.example}" if self.example else ""
        return f"default {show(self.default)}"


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    fields: tuple[FormField, ...]

    def field(self, name: str) -> FormField | None:
        return next((f for f in self.fields if f.name == name), None)


def show(value: Any) -> str:
    """A stored value as a form shows it (the inverse of ``convert``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _widget(name: str, schema: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    if name in SECRETS:
        return "secret", ()
    if "enum" in schema:
        return "choice", tuple(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "boolean":
        return "boolean", ()
    if kind in ("integer", "number"):
        return str(kind), ()
    if kind == "array":
        return "list", ()
    if kind == "object":
        return "mapping", ()
    return "text", ()


def _field(name: str, schema: Mapping[str, Any], required: bool, example: Any) -> FormField:
    # ``X | None`` is anyOf [X, null]: the form treats it as X, left empty for null.
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    inner = {**options[0], **schema} if options else schema
    widget, choices = _widget(name, inner)
    description = str(inner.get("description", ""))
    return FormField(name, widget, required, inner.get("default"), description, choices, show(example))


def kinds_from(document: Mapping[str, Any], path: str) -> dict[str, Kind]:
    """The kinds ``POST <path>`` takes, each with its form's fields (``name`` and ``kind`` left out)."""
    operation = document["paths"][f"/splice/admin{path}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    components = document.get("components", {}).get("schemas", {})
    found: dict[str, Kind] = {}
    for choice in schema.get("oneOf", [schema]):
        model = components[choice["$ref"].rsplit("/", 1)[-1]] if "$ref" in choice else choice
        properties: dict[str, Any] = model.get("properties", {})
        kind = properties.get("kind", {})
        name = str(kind.get("const") or kind.get("default") or "")
        required = set(model.get("required", []))
        example = (model.get("examples") or [{}])[0]
        fields = tuple(
            _field(key, value, key in required, example.get(key) if key not in SECRETS else None)
            for key, value in properties.items()
            if key not in ("name", "kind")
        )
        description = str(model.get("description") or "").split("\n\n")[0].replace("``", "")
        found[name] = Kind(name, " ".join(description.split()), fields)
    # REST first (the kind most often made), then the document's order.
    return dict(sorted(found.items(), key=lambda item: item[0] != "rest"))


async def kinds(request: Request, path: str) -> dict[str, Kind]:
    """``kinds_from`` the admin API's OpenAPI document, fetched once every ``CACHE_SECONDS`` per dashboard."""
    state = request.app.state
    cached: tuple[float, dict[str, Any]] | None = getattr(state, "openapi_document", None)
    if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
        admin: AdminApi = state.admin
        cached = (time.monotonic(), await admin.call("GET", "/openapi.json"))
        state.openapi_document = cached
    return kinds_from(cached[1], path)


def convert(field: FormField, text: str) -> Any:
    """The JSON value of what was typed in ``field``; text that does not convert is sent as it is."""
    if field.widget == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if field.widget == "number":
        try:
            return int(text) if _INTEGER.fullmatch(text) else float(text)
        except ValueError:
            return text
    if field.widget == "boolean" and text in ("true", "false"):
        return text == "true"
    if field.widget == "list":
        return [part for part in _SPLIT.split(text) if part]
    if field.widget == "mapping":
        return _mapping(text)
    return text


def _mapping(text: str) -> Any:
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            return text  # not 'Name: value': the admin API says what it expects
        found[name.strip()] = value.strip()
    return found


def body(kind: Kind, form: Mapping[str, Any], *, name: str) -> dict[str, Any]:
    """The admin API body of a submitted form: ``name``, ``kind``, every field that was filled in."""
    out: dict[str, Any] = {"name": name, "kind": kind.name}
    for field in kind.fields:
        raw = form.get(field.name)
        text = raw if isinstance(raw, str) else ""
        if field.widget != "secret":
            text = text.strip()  # a secret is sent exactly as typed
        if text:
            out[field.name] = convert(field, text)
    return out


def typed(kind: Kind | None, form: Mapping[str, Any]) -> dict[str, str]:
    """What was typed (secrets left out), to show the form again after a refusal."""
    keep = {f.name for f in kind.fields if f.widget != "secret"} if kind else set()
    return {k: v for k, v in form.items() if isinstance(v, str) and (k in keep or k in ("name", "kind"))}


def problems(error: AdminError | None) -> dict[str, list[str]]:
    """The admin API's problems by top-level field (``headers.X-Foo`` is the ``headers`` field's)."""
    found: dict[str, list[str]] = {}
    for problem in error.problems if error else []:
        field = re.split(r"[.\[]", str(problem.get("field", "")), maxsplit=1)[0]
        found.setdefault(field, []).append(str(problem.get("message", "")))
    return found


__all__ = ["SECRETS", "FormField", "Kind", "body", "convert", "kinds", "kinds_from", "problems", "show", "typed"]


def context(request: Request, kinds: dict[str, Kind], **values: Any) -> dict[str, Any]:
    """What a kind form's template takes: the kinds, the chosen one (``values["kind"]``, else the first), what was
    typed (``values``), no problems or error yet, whether the user may change anything; ``values`` go on top
    (each screen adds its own: what was created, the curl line, the choices...)."""
    chosen: dict[str, str] = values.pop("values", None) or {}
    kind = chosen.get("kind", "")
    kind = kind if kind in kinds else next(iter(kinds))
    return {
        "kinds": kinds,
        "kind": kinds[kind],
        "values": chosen,
        "problems": {},
        "error": None,
        "may_change": current_user(request).may_change,
        **values,
    }
