"""Where the cursor is, as far as completion cares, and the Markdown that describes a service: pure functions.

``context_at`` reads the text before the cursor: inside the name string of ``invoke(``/``ainvoke(``/
``invoke_async(``, at a key of that call's payload dict literal, inside the name string of
``self.out.<kind>[``, inside the topic string of ``self.publish(``/``self.apublish(``, or after ``self.``.
``service_markdown`` renders a service's docstring, fields, module and where it is deployed (completion
documentation and hover share it). ``service_members`` lists the public members of ``Service`` with their
documentation, read from its source with ``ast``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from splice.server.core.outgoing import KIND_NAMES

from .index import INVOKE_METHODS, Field
from .topics import typed_topic

_METHODS = "|".join(INVOKE_METHODS)
_NAME_STRING = re.compile(rf"\b(?:{_METHODS})\(\s*(?:name\s*=\s*)?[rRuU]?(['\"])([^'\"\n]*)$")
_PAYLOAD_OPEN = re.compile(
    rf"\b(?:{_METHODS})\(\s*(?:name\s*=\s*)?[rRuU]?(['\"])([^'\"\n]+)\1\s*,\s*(?:payload\s*=\s*)?\{{"
)
_KEY_TAIL = re.compile(r"(?:^|,)\s*(['\"]?)(\w*)$")
_CONNECTION_NAME = re.compile(rf"\bself\.out\.({'|'.join(KIND_NAMES)})\[\s*[rRuU]?(['\"])([^'\"\n]*)$")
_SELF_MEMBER = re.compile(r"\bself\.(\w*)$")
_LOOK_BACK = 4000


@dataclass(frozen=True)
class Context:
    kind: str
    """``service``, ``payload-key``, ``connection``, ``topic`` or ``member``."""
    prefix: str
    """What is typed already (the replaced text ends at the cursor)."""
    service: str = ""
    """For ``payload-key``: the invoked service; for ``connection``: the connection kind (``rest``...)."""
    quoted: bool = False
    """For ``payload-key``: whether a quote is already typed."""


def context_at(before: str) -> Context | None:
    """The completion context for the text before the cursor (the document up to it)."""
    line = before[before.rfind("\n") + 1 :]
    if match := _NAME_STRING.search(line):
        return Context("service", match.group(2))
    if match := _CONNECTION_NAME.search(line):
        return Context("connection", match.group(3), match.group(1))
    if (typed := typed_topic(line)) is not None:
        return Context("topic", typed)
    if match := _SELF_MEMBER.search(line):
        return Context("member", match.group(1))
    return _payload_context(before[-_LOOK_BACK:])


def _payload_context(before: str) -> Context | None:
    matches = list(_PAYLOAD_OPEN.finditer(before))
    if not matches:
        return None
    opened = matches[-1]
    tail = before[opened.end() :]
    depth = 1
    flat = []
    for ch in tail:
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
            if depth == 0:
                return None
        elif depth == 1:
            flat.append(ch)
    if depth != 1:
        return None
    text = "".join(flat)
    # after a ':' the cursor is in a value, not at a key
    if ":" in text[text.rfind(",") + 1 :]:
        return None
    match = _KEY_TAIL.search(text)
    if match is None:
        return None
    return Context("payload-key", match.group(2), opened.group(2), bool(match.group(1)))


def fields_markdown(title: str, fields: Sequence[Field]) -> list[str]:
    if not fields:
        return []
    lines = [f"**{title}**", ""]
    for f in fields:
        extra = "" if f.required else f" = {f.default}" if f.default is not None else " (optional)"
        lines.append(f"- `{f.name}: {f.type}{extra}`")
    return [*lines, ""]


def service_markdown(
    name: str,
    doc: str,
    module: str,
    inputs: Sequence[Field] | None,
    outputs: Sequence[Field] | None,
    deployed: str,
    channels: Sequence[str] = (),
) -> str:
    lines = [f"**{name}**", ""]
    if doc:
        lines += [doc, ""]
    lines += fields_markdown("Input", inputs or ())
    lines += fields_markdown("Output", outputs or ())
    lines.append(f"module `{module}`" if module else "not in the workspace")
    lines.append("")
    lines.append(f"deployed: {deployed}" if deployed else "not deployed")
    if channels:
        lines += ["", "channels: " + ", ".join(f"`{c}`" for c in channels)]
    return "\n".join(lines).strip() + "\n"


@dataclass(frozen=True)
class Member:
    name: str
    kind: str
    """``method``, ``property`` or ``attribute``."""
    signature: str
    doc: str


@functools.cache
def service_members() -> tuple[Member, ...]:
    """The public members of ``splice.server.Service`` with their documentation (read, not imported)."""
    from splice.server.core import service

    tree = ast.parse(inspect.getsource(service))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Service")
    out: list[Member] = []
    body = cls.body
    for position, item in enumerate(body):
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and not item.name.startswith("_"):
            is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
            args = ast.unparse(item.args).removeprefix("self").lstrip(", ")
            returns = f" -> {ast.unparse(item.returns)}" if item.returns else ""
            prefix = "async " if isinstance(item, ast.AsyncFunctionDef) else ""
            signature = f"{item.name}{returns}" if is_property else f"{prefix}{item.name}({args}){returns}"
            kind = "property" if is_property else "method"
            out.append(
                Member(
                    item.name,
                    kind,
                    signature.replace("-> ", ": ", 1) if is_property else signature,
                    ast.get_docstring(item) or "",
                )
            )
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            name = item.target.id
            if name.startswith("_") or name in ("Input", "Output"):
                continue
            following = body[position + 1] if position + 1 < len(body) else None
            doc = ""
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = str(following.value.value)
            annotation = ast.unparse(item.annotation)
            out.append(Member(name, "attribute", f"{name}: {annotation}", doc))
    return tuple(out)


__all__ = ["Context", "Member", "context_at", "fields_markdown", "service_markdown", "service_members"]
