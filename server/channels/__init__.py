"""Channels: how calls reach services (REST routing today) and the security definitions that guard them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .routing import METHODS, Match, NotAllowed, Route, Router, check_methods, check_pattern
from .security import KINDS, SecurityDefinition, Verifier, hash_secret, new_token, token_digest, verify_secret

if TYPE_CHECKING:
    from .specs import ApiKeySecurity, BasicSecurity, ChannelSpec, SecuritySpec

_SPECS = frozenset({"ApiKeySecurity", "BasicSecurity", "ChannelSpec", "SecuritySpec"})


def __getattr__(name: str) -> Any:
    # The specs are pydantic models: imported on first use, so that what only routes or checks a secret (the
    # CLI, the language server) does not pay for pydantic's import (~100 ms).
    if name in _SPECS:
        from . import specs

        return getattr(specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KINDS",
    "METHODS",
    "ApiKeySecurity",
    "BasicSecurity",
    "ChannelSpec",
    "Match",
    "NotAllowed",
    "Route",
    "Router",
    "SecurityDefinition",
    "SecuritySpec",
    "Verifier",
    "check_methods",
    "check_pattern",
    "hash_secret",
    "new_token",
    "token_digest",
    "verify_secret",
]
