"""An ``ast`` tree for a file that does not parse: its whole statements, each at its own lines and columns.

While a line is half typed, ``ast.parse`` refuses the whole file, and every diagnostic of the file would go
until it parses again. parso's error-recovering parser still reads it, with error nodes where the text is
broken. ``recover`` keeps every statement parso read whole and puts ``pass`` (then blank lines) in place of
each broken one, in a copy of the source, then parses the copy with ``ast``. A broken method inside a class
is replaced alone: the class, its other methods and its ``Input`` stay. Every line not replaced is the
original byte for byte, so every range the index takes from the tree is where the text is now.

Why not the alternatives:

- Re-parsing each whole statement with ``ast`` at its line offset loses what encloses it: a method beside
  a broken one belongs to a class whose name, fields and hooks the index reads. The copy keeps the classes.
- Keeping the last good parse and shifting it for unchanged lines shows stale names: an invoke typed since
  the last good parse would go unchecked, a deleted one still flagged, and the shift needs a diff of edits.

The lines replaced come back in ``Recovered.holes``, so the index does not claim a class lacks a ``handle``
that may be on one of them. parso and ``ast`` disagree on some errors (``f() = 1`` is grammatical to
parso): while the copy still does not parse, the statement holding the line ``ast`` names is replaced too,
widening to the statement around it when that was not enough, a bounded number of times. What cannot be
recovered so gives ``None``: then the file's syntax error is all there is to say.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from parso.grammar import Grammar, load_grammar
from parso.tree import BaseNode, NodeOrLeaf

_ERRORS = frozenset({"error_node", "error_leaf"})
_SKIPPED = frozenset({"newline", "endmarker"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_TRIES = 20
"""How many times a copy ``ast`` still refuses is widened before giving up."""


@dataclass(frozen=True)
class Recovered:
    tree: ast.Module
    holes: frozenset[int]
    """The 1-based lines replaced by ``pass`` or left blank: what was there is not in ``tree``."""


@dataclass(frozen=True)
class _Statement:
    first: int
    last: int
    """1-based, inclusive."""
    indent: str
    """The indentation of the block the statement belongs to (what a ``pass`` in its place needs)."""


def recover(source: str) -> Recovered | None:
    """The tree of ``source`` without its broken statements, or ``None`` when no such tree can be made."""
    lines = _split(source)
    module = _grammar().parse(source, error_recovery=True)
    walk = _Walk(lines)
    walk.block(module, "")
    holes = walk.settle()
    last_error: int | None = None
    for _ in range(MAX_TRIES):
        patched = _patch(lines, holes)
        try:
            return Recovered(ast.parse(patched), frozenset(_lines_of(holes)))
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
        if line is None:
            return None
        chain = [s for s in _chain(module, line, lines) if s not in holes]
        if not chain:
            return None
        # The innermost statement first; the outermost when that did not move the error on.
        holes.append(chain[-1] if line == last_error else chain[0])
        last_error = line
    return None


@functools.cache
def _grammar() -> Grammar[Any]:
    grammar: Grammar[Any] = load_grammar()
    return grammar


def _split(source: str) -> list[str]:
    """The lines of ``source`` as Python counts them (``\\n``, ``\\r\\n``, ``\\r``), each with its line break."""
    out, start = [], 0
    for match in _LINE_BREAK.finditer(source):
        out.append(source[start : match.end()])
        start = match.end()
    if start < len(source):
        out.append(source[start:])
    return out


def _has_error(node: NodeOrLeaf) -> bool:
    if node.type in _ERRORS:
        return True
    return isinstance(node, BaseNode) and any(_has_error(child) for child in node.children)


def _span(node: NodeOrLeaf) -> tuple[int, int]:
    (first, _), (last, column) = node.start_pos, node.end_pos
    if column == 0 and last > first:  # it ends with its line break
        last -= 1
    return first, last


def _members(block: BaseNode) -> list[NodeOrLeaf]:
    """The statements of a module or a suite; parso's zero-width error leaves (indentation marks) left out."""
    return [
        child
        for child in block.children
        if child.type not in _SKIPPED and not (child.type == "error_leaf" and child.start_pos == child.end_pos)
    ]


def _indent_of(block: BaseNode, lines: list[str]) -> str:
    """What indents the statements of ``block``: its first statement's, as Python decides a suite's."""
    if block.type == "file_input":
        return ""
    for member in _members(block):
        line, column = member.start_pos
        prefix = lines[line - 1][:column] if line <= len(lines) else ""
        if not prefix.strip():
            return prefix
    return ""


def _starts_line_at(node: NodeOrLeaf, indent: str, lines: list[str]) -> bool:
    line, column = node.start_pos
    return line <= len(lines) and lines[line - 1][:column] == indent


def _header_whole(node: BaseNode) -> bool:
    """Whether a compound statement reads whole apart from its suites (and the statements nested in it)."""
    for child in node.children:
        if child.type == "suite":
            continue
        if isinstance(child, BaseNode) and child.type != "error_node" and _is_compound(child):
            if not _header_whole(child):
                return False
        elif _has_error(child):
            return False
    return True


def _is_compound(node: BaseNode) -> bool:
    return any(
        child.type == "suite" or (isinstance(child, BaseNode) and _is_compound(child)) for child in node.children
    )


def _repairable(node: NodeOrLeaf) -> TypeGuard[BaseNode]:
    """A compound statement whose header reads whole: only what is broken in its suites is replaced."""
    return isinstance(node, BaseNode) and node.type != "error_node" and _is_compound(node) and _header_whole(node)


class _Walk:
    """Which statements to keep and which to replace, block by block."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.kept: list[_Statement] = []
        self.holes: list[_Statement] = []

    def block(self, block: BaseNode, indent: str) -> None:
        for child in _members(block):
            statement = _Statement(*_span(child), indent)
            if not _starts_line_at(child, indent, self.lines):
                self.holes.append(statement)  # mis-indented, or after something broken on its line
            elif not _has_error(child):
                self.kept.append(statement)
            elif _repairable(child):
                self.compound(child)
            else:
                self.holes.append(statement)

    def compound(self, node: BaseNode) -> None:
        for child in node.children:
            if child.type == "suite" and isinstance(child, BaseNode):
                self.block(child, _indent_of(child, self.lines))
            elif isinstance(child, BaseNode) and child.type != "error_node" and _is_compound(child):
                self.compound(child)

    def settle(self) -> list[_Statement]:
        """The holes, grown by every kept statement that shares a line with one (a line is replaced whole)."""
        holes, kept = list(self.holes), list(self.kept)
        while True:
            covered = _lines_of(holes)
            touching = [s for s in kept if any(n in covered for n in range(s.first, s.last + 1))]
            if not touching:
                return holes
            holes += touching
            kept = [s for s in kept if s not in touching]


def _lines_of(holes: list[_Statement]) -> set[int]:
    return {n for hole in holes for n in range(hole.first, hole.last + 1)}


def _patch(lines: list[str], holes: list[_Statement]) -> str:
    """``lines`` with each hole's first line a ``pass`` at its block's indentation and its other lines blank."""
    out = list(lines)
    done: set[int] = set()
    for hole in sorted(holes, key=lambda h: (h.first, -h.last)):
        for number in range(hole.first, min(hole.last, len(out)) + 1):
            if number in done:
                continue
            done.add(number)
            text = out[number - 1]
            ending = text[len(text.rstrip("\r\n")) :]
            out[number - 1] = (f"{hole.indent}pass" if number == hole.first else "") + ending
    return "".join(out)


def _chain(module: BaseNode, line: int, lines: list[str]) -> list[_Statement]:
    """The statements holding ``line``, innermost first (a method's statement, the method, its class)."""
    chain: list[_Statement] = []
    block, indent = module, ""
    while True:
        holder = next((c for c in _members(block) if _span(c)[0] <= line <= _span(c)[1]), None)
        if holder is None:
            return chain[::-1]
        chain.append(_Statement(*_span(holder), indent))
        suite = _suite_holding(holder, line)
        if suite is None:
            return chain[::-1]
        block, indent = suite, _indent_of(suite, lines)


def _suite_holding(node: NodeOrLeaf, line: int) -> BaseNode | None:
    if not isinstance(node, BaseNode):
        return None
    for child in node.children:
        if not isinstance(child, BaseNode) or not _span(child)[0] <= line <= _span(child)[1]:
            continue
        if child.type == "suite":
            return child
        if _is_compound(child):
            return _suite_holding(child, line)
    return None


__all__ = ["MAX_TRIES", "Recovered", "recover"]
