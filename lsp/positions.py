"""Positions as LSP counts them: 0-based lines, columns in UTF-16 code units; ``ast``'s positions converted.

``ast`` gives 1-based lines and UTF-8 byte offsets; an editor speaks UTF-16 columns. ``Lines`` converts one
to the other against the text the tree was parsed from, so an emoji or an accented letter earlier on a line
never shifts a diagnostic.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""What ends a line for Python (``str.splitlines`` also splits at form feeds and others, which ``ast`` does not)."""


@dataclass(frozen=True)
class Range:
    """A span of text: 0-based lines, columns in UTF-16 code units."""

    line: int
    start: int
    end_line: int
    end: int

    def contains(self, line: int, character: int) -> bool:
        after_start = (line, character) >= (self.line, self.start)
        return after_start and (line, character) <= (self.end_line, self.end)


def utf16_column(line: str, index: int) -> int:
    """The UTF-16 column of the character at ``index`` (a ``str`` index) of ``line``."""
    prefix = line[:index]
    return len(prefix) + sum(1 for ch in prefix if ord(ch) > 0xFFFF)


def str_index(line: str, column: int) -> int:
    """The ``str`` index of a UTF-16 ``column`` of ``line`` (the inverse of ``utf16_column``)."""
    units = 0
    for index, ch in enumerate(line):
        if units >= column:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


class Lines:
    """Converts ``ast``'s (line, UTF-8 byte offset) positions to LSP's (line, UTF-16 column)."""

    def __init__(self, source: str) -> None:
        self.lines = _LINE_BREAK.split(source)

    def text(self, line: int) -> str:
        return self.lines[line] if 0 <= line < len(self.lines) else ""

    def column(self, lineno: int, byte_offset: int) -> int:
        text = self.text(lineno - 1)
        if text.isascii():
            return byte_offset
        return utf16_column(text, len(text.encode()[:byte_offset].decode(errors="replace")))

    def range_of(self, node: ast.AST) -> Range:
        lineno, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        end_lineno = getattr(node, "end_lineno", None) or lineno
        end_col = getattr(node, "end_col_offset", None)
        end_col = col if end_col is None else end_col
        return Range(lineno - 1, self.column(lineno, col), end_lineno - 1, self.column(end_lineno, end_col))

    def string_inside(self, node: ast.Constant) -> Range:
        """The text between the quotes of a one-line string literal (prefixes and triple quotes allowed)."""
        whole = self.range_of(node)
        if whole.line != whole.end_line:
            return whole
        text = self.text(whole.line)
        start, end = str_index(text, whole.start), str_index(text, whole.end)
        literal = text[start:end]
        body = literal.lstrip("rRbBuUfF")
        quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
        first = start + (len(literal) - len(body)) + len(quote)
        return Range(whole.line, utf16_column(text, first), whole.line, utf16_column(text, end - len(quote)))


__all__ = ["Lines", "Range", "str_index", "utf16_column"]
