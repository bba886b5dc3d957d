"""Configuration as code: the splice.toml reader (``reader``: parse, check, plan) and ``apply`` (carry a plan out)."""

from __future__ import annotations

from .apply import apply_declaration, apply_file
from .reader import Declaration, DeclarationError, DeclarationProblem, Plan, Secrets, parse, plan, resolve_secrets

__all__ = [
    "Declaration",
    "DeclarationError",
    "DeclarationProblem",
    "Plan",
    "Secrets",
    "apply_declaration",
    "apply_file",
    "parse",
    "plan",
    "resolve_secrets",
]
