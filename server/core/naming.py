"""Pure rules for naming modules and services.

A module's name comes from its path relative to the project root: ``billing/orders.py`` is
``billing.orders`` and ``billing/__init__.py`` is ``billing``. A service's name is its class's
``name`` attribute when it has one; otherwise the module name, a dot, and the class name in
kebab case: class ``CreateOrder`` in ``billing/orders.py`` is ``billing.orders.create-order``.

The language server imports these functions: keep them free of I/O and of any import beyond the
standard library.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

MAX_SERVICE_NAME = 200
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def kebab(class_name: str) -> str:
    """``CreateOrder`` -> ``create-order``, ``GetHTTPStatus`` -> ``get-http-status``, ``my_svc`` -> ``my-svc``."""
    return _CAMEL_BOUNDARY.sub("-", class_name).replace("_", "-").strip("-").lower()


def module_name(relative_path: str) -> str:
    """The dotted module name for a path relative to the project root; raises ``ValueError`` if it cannot be one."""
    problem = check_module_path(relative_path)
    if problem:
        raise ValueError(problem)
    parts = relative_path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def check_module_path(relative_path: str) -> str | None:
    """What is wrong with a module path relative to the project root, or ``None`` if nothing is."""
    if not relative_path:
        return "the module path is empty"
    if "\\" in relative_path:
        return f"use '/' in module paths, not '\\': {relative_path!r}"
    if relative_path.startswith("/"):
        return f"the module path must be relative to the project root: {relative_path!r}"
    if not relative_path.endswith(".py"):
        return f"a module path must end with '.py': {relative_path!r}"
    parts = relative_path[: -len(".py")].split("/")
    if parts == ["__init__"]:
        return "the project root itself cannot be a package ('__init__.py' at the top)"
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            return f"{part!r} in {relative_path!r} is not a valid Python module name"
    return None


def service_name(module: str, class_name: str, explicit: str | None = None) -> str:
    """The name a service is known by: ``explicit`` if given, else ``<module>.<kebab class name>``."""
    if explicit is not None:
        return explicit
    return f"{module}.{kebab(class_name)}"


HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header name (an RFC 9110 token): security definitions' and REST connections' ``header``."""


def check_service_name(name: object) -> str | None:
    """What is wrong with a service name, or ``None`` if nothing is."""
    if not isinstance(name, str):
        return f"a service name must be a string, not {type(name).__name__}"
    if not name:
        return "a service name must not be empty"
    if len(name) > MAX_SERVICE_NAME:
        return f"a service name must be at most {MAX_SERVICE_NAME} characters long"
    if not _SERVICE_NAME.fullmatch(name):
        return (
            f"service name {name!r} may only hold letters, digits and '_ . : / -', and must start with a letter,"
            " digit or '_'"
        )
    return None


LISTED = 20
"""How many known names an "unknown name" message lists at most."""


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """``no <what> named 'x' (known <what>s: a, b); did you mean 'a'?``: the words of an unknown name's error."""
    names = sorted(known)
    hint = closest(name, names)
    listed = ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
    suggestion = f"; did you mean '{hint}'?" if hint else ""
    return f"no {what} named '{name}' (known {what}s: {listed or 'none'}){suggestion}"


def closest(name: str, candidates: list[str] | set[str]) -> str | None:
    """The candidate most like ``name``, for "did you mean" hints."""
    import difflib

    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
