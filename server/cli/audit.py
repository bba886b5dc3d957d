"""``splice audit``: who did what to the cluster, and when (the admin API's audit log)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    """Nothing yet."""


def run(args: argparse.Namespace) -> int | None:
    return None


__all__ = ["register", "run"]
