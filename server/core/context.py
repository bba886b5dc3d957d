"""The correlation id of the call under way, visible to every log line written on its behalf, and who asked for it
(the admin API's ``X-Splice-Actor``)."""

from __future__ import annotations

import logging
import random
from contextvars import ContextVar

current_cid: ContextVar[str] = ContextVar("splice_cid", default="-")
current_actor: ContextVar[str] = ContextVar("splice_actor", default="admin-api")
"""Who makes the admin call under way (``X-Splice-Actor``, e.g. ``dashboard:ann``): the default ``deployed_by``."""
ACTOR_MAX = 100


def actor_from_header(value: str) -> str | None:
    """The actor a header names, or ``None`` if it is empty, longer than ``ACTOR_MAX`` or not printable text."""
    value = value.strip()
    if not value or len(value) > ACTOR_MAX or not value.isprintable():
        return None
    return value


def new_cid() -> str:
    """A fresh correlation id: 24 hex digits.

    From ``random`` (a Mersenne Twister seeded from the system, and seeded again in a forked child), not
    ``os.urandom``: a cid names a call in logs and answers, it guards nothing, and its system call per request was
    the largest self time of Splice's own code in the REST channel's profile (2.8% of the loop)."""
    return _randbytes(12).hex()


_randbytes = random.randbytes


class CidFilter(logging.Filter):
    """Puts the current cid on records that do not carry one (install it on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "cid"):
            record.cid = current_cid.get()
        return True
