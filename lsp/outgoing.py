"""Outgoing connections as the language server sees them: where a module names one, and what the cluster defines.

A service reaches a connection by kind and name, ``self.out.rest["billing"]`` (kinds: those of
``splice.server.core.outgoing.KIND_NAMES``). ``outgoing_uses`` finds each such subscript with a string
literal in an ``ast`` tree, with the range of the name between its quotes (what completion replaces, a
diagnostic marks and a hover explains). ``Connection`` is one connection of the cluster as
``GET /splice/admin/outgoing`` lists it: name, kind and address only (the API masks secrets; none is kept).
A name reached any other way (a variable, ``self.out["rest"]``) is not checked: only a literal can be.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from splice.server.core.outgoing import KIND_NAMES

from .positions import Lines, Range


@dataclass(frozen=True)
class OutgoingUse:
    """``self.out.<kind>["<name>"]`` in a module."""

    kind: str
    name: str
    range: Range
    """The name's text inside the quotes."""


@dataclass(frozen=True)
class Connection:
    """An outgoing connection the cluster defines."""

    name: str
    kind: str
    address: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Connection:
        return cls(str(raw["name"]), str(raw.get("kind", "")), str(raw.get("address", "")))


def outgoing_uses(tree: ast.AST, lines: Lines) -> tuple[OutgoingUse, ...]:
    """Every ``self.out.<kind>[<string literal>]`` of ``tree``, in the order ``ast.walk`` meets them."""
    return tuple(use for node in ast.walk(tree) if (use := _use(node, lines)) is not None)


def _use(node: ast.AST, lines: Lines) -> OutgoingUse | None:
    if not isinstance(node, ast.Subscript):
        return None
    kind, key = node.value, node.slice
    if not (isinstance(kind, ast.Attribute) and kind.attr in KIND_NAMES):
        return None
    out = kind.value
    if not (isinstance(out, ast.Attribute) and out.attr == "out" and isinstance(out.value, ast.Name)):
        return None
    if out.value.id != "self" or not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
        return None
    return OutgoingUse(kind.attr, key.value, lines.string_inside(key))


def of_kind(connections: Iterable[Connection], kind: str) -> list[Connection]:
    return sorted((c for c in connections if c.kind == kind), key=lambda c: c.name)


def with_article(kind: str) -> str:
    """``a sql``, ``an amqp``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def connection_markdown(kind: str, name: str, connections: Iterable[Connection] | None) -> str:
    """The hover of a connection's name: its kind and address, or why nothing is known of it."""
    if connections is None:
        return f"**{name}**\n\n{kind} connection (the cluster's connections are not known)\n"
    found = {c.kind: c for c in connections if c.name == name}
    if kind in found:
        return f"**{name}**\n\n{kind} connection\n\naddress `{found[kind].address}`\n"
    if found:
        other = next(iter(found.values()))
        return f"**{name}**\n\n{with_article(other.kind)} connection, not {kind}: `self.out.{other.kind}['{name}']`\n"
    return f"**{name}**\n\nno {kind} connection of this name in the cluster\n"


__all__ = ["Connection", "OutgoingUse", "connection_markdown", "of_kind", "outgoing_uses", "with_article"]
