"""Channels: how calls reach services (REST routing today) and the security definitions that guard them."""

from __future__ import annotations

from .routing import METHODS, Match, NotAllowed, Route, Router, check_methods, check_pattern
from .security import KINDS, SecurityDefinition, Verifier, hash_secret, new_token, token_digest, verify_secret

__all__ = [
    "KINDS",
    "METHODS",
    "Match",
    "NotAllowed",
    "Route",
    "Router",
    "SecurityDefinition",
    "Verifier",
    "check_methods",
    "check_pattern",
    "hash_secret",
    "new_token",
    "token_digest",
    "verify_secret",
]
