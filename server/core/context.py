"""The correlation id of the call under way, visible to every log line written on its behalf."""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar

current_cid: ContextVar[str] = ContextVar("splice_cid", default="-")


def new_cid() -> str:
    """A fresh correlation id: 24 hex digits."""
    return os.urandom(12).hex()


class CidFilter(logging.Filter):
    """Puts the current cid on records that do not carry one (install it on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "cid"):
            record.cid = current_cid.get()
        return True
