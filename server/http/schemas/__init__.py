"""The admin API's bodies and answers as pydantic models: they check bodies, serialise answers, make the document."""

from __future__ import annotations

from . import common, config, deploy, jobs, observe, outgoing, runtime

__all__ = ["common", "config", "deploy", "jobs", "observe", "outgoing", "runtime"]
