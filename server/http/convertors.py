"""Path convertors of the admin API, registered with Starlette when this module is imported.

``{key:text}`` is Starlette's ``{key:path}`` (any text, slashes included) that also takes a newline: the ``path``
convertor is ``.*``, and '.' stops at a newline, so a cache key or a name holding one (``%0A``) matched no route.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class Text(Convertor[str]):
    """Any text, '/' and newlines included (the last parameter of a path, or one before a fixed suffix)."""

    regex = r"(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("text", Text())
