"""Channels: how calls reach services (REST routing today) and the security definitions that guard them."""

from __future__ import annotations

from .routing import METHODS, Match, NotAllowed, Route, Router, check_methods, check_pattern
from .security import KINDS, SecurityDefinition, Verifier, hash_secret, new_token, token_digest, verify_secret
from .specs import ApiKeySecurity, BasicSecurity, ChannelSpec, SecuritySpec

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
