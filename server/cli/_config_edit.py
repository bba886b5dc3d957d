"""Small edits of a ``cluster.toml`` text that keep everything else as the user wrote it (comments, order).

tomlkit reads the file into a document that writes back exactly as it was read; each function changes that
document and checks the new text: parsed, it must equal the old file's data with exactly the one change asked
for, else ``ConfigError`` says the file is laid out in a way it cannot edit and nothing is written. Sections
written inline (``load_balancer = {port = 1}``, ``servers = [{...}]``) are refused: the commands keep to the
layout ``splice quickstart create`` writes, one table per section.

Comments and blank lines that end a table belong, to tomlkit, to that table; to a reader, the comments
right above a header belong to the header. New keys go after a table's last key, new tables and entries go
before the comments that introduce the next header.
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Comment, Item, Key, SingleKey, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from ..config import CONFIG_FILE
from ..core.errors import ConfigError

_Value = str | int
_Body = list[tuple[Key | None, Item]]


def _refused(what: str) -> ConfigError:
    return ConfigError(CONFIG_FILE, f"cannot {what} in this file's layout: edit it by hand")


def _parse(text: str, what: str) -> tuple[dict[str, Any], TOMLDocument]:
    """The file's data (tomllib, the reader the servers use) and its tomlkit document."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, f"{what}: not valid TOML: {exc}") from None
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError:
        raise _refused(what) from None
    if document.as_string() != text:  # tomlkit moves a [[servers]] entry written apart from the others
        raise _refused(what)
    return data, document


def _checked(document: TOMLDocument, expected: dict[str, Any], what: str) -> str:
    text = document.as_string()
    try:
        same = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise _refused(what)
    return text


def _last_body(body: _Body) -> _Body:
    """The body the text of ``body`` ends with: its own, or its last table's (``[servers.extra]``, an entry)."""
    while body and isinstance(body[-1][1], Table | AoT):
        last = body[-1][1]
        if isinstance(last, AoT) and not last.body:
            break
        body = (last.body[-1] if isinstance(last, AoT) else last).value.body
    return body


def _take_tail(body: _Body, *, keep_trailing_comments: bool = False) -> _Body:
    """Remove and return the comments and blank lines that end ``body``; with ``keep_trailing_comments``, the
    comments right below the last key stay (they are about it) and only what starts at a blank line goes.

    Only items without a key are removed, from the end: the container's index of its keys stays right.
    """
    start = len(body)
    while start and body[start - 1][0] is None and isinstance(body[start - 1][1], Whitespace | Comment):
        start -= 1
    if keep_trailing_comments:
        while start < len(body) and isinstance(body[start][1], Comment):
            start += 1
    tail = body[start:]
    del body[start:]
    return tail


def _index(document: TOMLDocument, key: str) -> int | None:
    """Where section ``key`` starts in the document's items."""
    return next((i for i, (name, _) in enumerate(document.body) if name is not None and name.key == key), None)


def _body_above(document: TOMLDocument, entries: AoT, position: int) -> _Body | None:
    """The body whose text ends right above entry ``position`` of ``[[servers]]``; ``None`` when that is no
    table's (a comment or key of the top level)."""
    if position:
        return _last_body([(None, entries.body[position - 1])])
    index = _index(document, "servers")
    above = document.body[index - 1][1] if index else None
    return _last_body([(None, above)]) if isinstance(above, Table | AoT) else None


def _drop_blank_end(document: TOMLDocument) -> None:
    """Drop the blank lines that end the file: what is appended comes after one blank line, however many."""
    body = _last_body(document.body)
    while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace):
        body.pop()


def _new_table(values: dict[str, _Value], tail: _Body) -> Table:
    table = tomlkit.table()
    for key, value in values.items():
        table[key] = value
    table.trivia.indent = "\n"  # a blank line above its header
    table.value.body.extend(tail)
    return table


def _insert_before(document: TOMLDocument, key: str, items: _Body) -> TOMLDocument:
    """``document`` with ``items`` before the section ``key``: tomlkit only appends, so the items are appended
    again to a new document as its parser does (``parsing(True)``: nothing reformatted)."""
    rebuilt = tomlkit.document()
    rebuilt.parsing(True)
    for item_key, item in document.body:
        if item_key is not None and item_key.key == key:
            for new_key, new in items:
                rebuilt.append(new_key, new)
            key = ""  # only before the first
        rebuilt.append(item_key, item)
    rebuilt.parsing(False)
    return rebuilt


def _set_keys(table: Table, values: dict[str, _Value]) -> None:
    """Each value in place when the key is there (its comment kept), else after the table's last key."""
    body = table.value.body
    tail = _take_tail(body)
    for key, value in values.items():
        table[key] = value
    body.extend(tail)


def set_table(text: str, table: str, values: dict[str, _Value]) -> str:
    """Set ``values`` in ``[table]``, adding the table (before the first ``[[servers]]``) if it is missing."""
    data, document = _parse(text, f"set [{table}]")
    expected = copy.deepcopy(data)
    expected.setdefault(table, {}).update(values)
    current = document.get(table)
    if isinstance(current, Table):
        _set_keys(current, values)
        return _checked(document, expected, f"set [{table}]")
    if current is not None:
        raise _refused(f"add [{table}]")
    servers = _index(document, "servers")
    if servers is None or not isinstance(document["servers"], AoT):
        _drop_blank_end(document)
        document.append(table, _new_table(values, []))
        return _checked(document, expected, f"add [{table}]")
    above = document.body[servers - 1][1] if servers else None
    # The blank lines and comments above [[servers]] stay above it, below the new table.
    tail = _take_tail(_last_body([(None, above)])) if isinstance(above, Table | AoT) else []
    if not tail or not isinstance(tail[0][1], Whitespace):
        tail.insert(0, (None, tomlkit.nl()))
    new = _new_table(values, tail)
    if not isinstance(above, Table | AoT):
        new.trivia.indent = ""
    return _checked(_insert_before(document, "servers", [(SingleKey(table), new)]), expected, f"add [{table}]")


def add_array_entry(text: str, table: str, values: dict[str, _Value], what: str) -> str:
    """Add a ``[[table]]`` entry after the last one (at the end if there is none); ``what`` names it in errors."""
    data, document = _parse(text, what)
    expected = copy.deepcopy(data)
    expected.setdefault(table, []).append(dict(values))
    entries = document.get(table)
    if entries is None:
        _drop_blank_end(document)
        document.append(table, tomlkit.aot())
        entries = document[table]
    if not isinstance(entries, AoT):
        raise _refused(what)
    # What separates the last entry from the next header (blank lines, its comments) goes below the new one.
    tail = _take_tail(_last_body([(None, entries)]), keep_trailing_comments=True) if entries.body else []
    entries.append(_new_table(values, tail))
    return _checked(document, expected, what)


def add_server(text: str, name: str, host: str, port: int, workers: int | str = 1) -> str:
    """Add a ``[[servers]]`` entry after the last one (at the end if there is none); ``workers`` only when not 1."""
    entry: dict[str, Any] = {"name": name, "host": host, "port": port}
    if workers != 1:
        entry["workers"] = workers
    return add_array_entry(text, "servers", entry, "add a server")


def _remove_entry(document: TOMLDocument, entries: AoT, position: int) -> TOMLDocument:
    """``document`` without entry ``position`` of ``[[servers]]``.

    The entry goes with its sub-tables and the comments below its keys. What separated it from the next
    header (blank lines, the comments right above that header) replaces the blank lines above it; the
    comments right above it stay (about the entry or about every server, they cannot be told apart).
    """
    tail = _take_tail(_last_body([(None, entries.body[position])]), keep_trailing_comments=True)
    above = _body_above(document, entries, position)
    kept = [] if above is None else _take_tail(above, keep_trailing_comments=True)
    if not any(isinstance(item, Comment) for _, item in kept):
        kept = []  # only blank lines: the removed entry's take their place
    if above is None or kept:
        while tail and isinstance(tail[0][1], Whitespace):
            del tail[0]
    del entries[position]
    if above is not None:
        above.extend(kept + tail)
    elif tail:  # the first entry, below no table: what was above the next one goes above [[servers]]
        document = _insert_before(document, "servers", tail)
    return document


def remove_server(text: str, name: str) -> str:
    """Remove the ``[[servers]]`` entry named ``name``."""
    data, document = _parse(text, "remove a server")
    servers = data.get("servers", [])
    position = next((i for i, s in enumerate(servers) if isinstance(s, dict) and s.get("name") == name), None)
    if position is None:
        raise ConfigError(CONFIG_FILE, f"no server named '{name}'", "servers")
    expected = copy.deepcopy(data)
    del expected["servers"][position]
    entries = document.get("servers")
    if not isinstance(entries, AoT):
        raise _refused("remove a server")
    return _checked(_remove_entry(document, entries, position), expected, "remove a server")


__all__ = ["add_array_entry", "add_server", "remove_server", "set_table"]
