"""Small edits of a ``cluster.toml`` text that keep everything else as the user wrote it (comments, order).

Each function returns the new text and checks it: parsed, it must equal the old file's data with exactly
the one change asked for, else ``ConfigError`` says the file is laid out in a way it cannot edit (an
inline table, say) and nothing is written.
"""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any

from ..config import CONFIG_FILE, _toml_str
from ..core.errors import ConfigError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")
_Value = str | int


def _render(value: _Value) -> str:
    return _toml_str(value) if isinstance(value, str) else str(value)


def _headers(lines: list[str]) -> list[tuple[int, str, bool]]:
    """``(line index, table name, is an array table)`` of every table header."""
    found = []
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match:
            found.append((index, match.group(2).replace(" ", ""), match.group(1) == "[["))
    return found


def _block_end(lines: list[str], start: int, owner: str) -> int:
    """Where the table starting at ``start`` ends: the next header that is not one of its sub-tables."""
    for index, name, _ in _headers(lines):
        if index > start and not name.startswith(owner + "."):
            return index
    return len(lines)


def _last_content(lines: list[str], start: int, end: int) -> int:
    """The line after the last non-blank line of ``lines[start:end]``."""
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, f"{what}: not valid TOML: {exc}") from None


def _checked(new_lines: list[str], expected: dict[str, Any], what: str) -> str:
    text = "\n".join(new_lines) + "\n"
    try:
        same = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise ConfigError(CONFIG_FILE, f"cannot {what} in this file's layout: edit it by hand")
    return text


def set_table(text: str, table: str, values: dict[str, _Value]) -> str:
    """Set ``values`` in ``[table]``, adding the table (before the first ``[[servers]]``) if it is missing."""
    data = _parse(text, f"set [{table}]")
    expected = copy.deepcopy(data)
    expected.setdefault(table, {}).update(values)
    lines = text.splitlines()
    header = next((index for index, name, array in _headers(lines) if name == table and not array), None)
    if header is None:
        block = [f"[{table}]", *(f"{key} = {_render(value)}" for key, value in values.items()), ""]
        servers = next((index for index, name, array in _headers(lines) if name == "servers" and array), None)
        if servers is None:
            lines = [*lines[: _last_content(lines, -1, len(lines))], "", *block[:-1]]
        else:
            lines[servers:servers] = block
        return _checked(lines, expected, f"add [{table}]")
    end = _block_end(lines, header, table)
    for key, value in values.items():
        pattern = re.compile(rf'^(\s*{re.escape(key)}\s*=\s*)("(?:[^"\\]|\\.)*"|[^\s#]+)(\s*#.*)?$')
        for index in range(header + 1, end):
            match = pattern.match(lines[index])
            if match:
                lines[index] = f"{match.group(1)}{_render(value)}{match.group(3) or ''}"
                break
        else:
            at = _last_content(lines, header, end)
            lines.insert(at, f"{key} = {_render(value)}")
            end += 1
    return _checked(lines, expected, f"set [{table}]")


def add_array_entry(text: str, table: str, values: dict[str, _Value], what: str) -> str:
    """Add a ``[[table]]`` entry after the last one (at the end if there is none); ``what`` names it in errors."""
    data = _parse(text, what)
    expected = copy.deepcopy(data)
    expected.setdefault(table, []).append(dict(values))
    lines = text.splitlines()
    starts = [index for index, name, array in _headers(lines) if name == table and array]
    at = len(lines) if not starts else _block_end(lines, starts[-1], table)
    at = _last_content(lines, -1, at)
    lines[at:at] = ["", f"[[{table}]]", *(f"{key} = {_render(value)}" for key, value in values.items())]
    return _checked(lines, expected, what)


def add_server(text: str, name: str, host: str, port: int) -> str:
    """Add a ``[[servers]]`` entry after the last one (at the end if there is none)."""
    return add_array_entry(text, "servers", {"name": name, "host": host, "port": port}, "add a server")


def remove_server(text: str, name: str) -> str:
    """Remove the ``[[servers]]`` entry named ``name``."""
    data = _parse(text, "remove a server")
    servers = data.get("servers", [])
    position = next((i for i, s in enumerate(servers) if isinstance(s, dict) and s.get("name") == name), None)
    if position is None:
        raise ConfigError(CONFIG_FILE, f"no server named '{name}'", "servers")
    expected = copy.deepcopy(data)
    del expected["servers"][position]
    lines = text.splitlines()
    starts = [index for index, table, array in _headers(lines) if table == "servers" and array]
    if len(starts) != len(servers):
        raise ConfigError(CONFIG_FILE, "cannot remove a server in this file's layout: edit it by hand")
    start = starts[position]
    end = _block_end(lines, start, "servers")
    del lines[start:end]
    if 0 < start < len(lines) and not lines[start - 1].strip() and not lines[start].strip():
        del lines[start]  # keep one blank line between the neighbours, not two
    while lines and not lines[-1].strip():
        lines.pop()
    return _checked(lines, expected, "remove a server")


__all__ = ["add_array_entry", "add_server", "remove_server", "set_table"]
