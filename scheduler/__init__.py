"""The scheduler: a process of its own, one active per cluster, running jobs kept in the ODB through the servers.

``runner.Scheduler`` is the loop, ``policy`` its pure decisions, ``process`` the process around it. The jobs
themselves (what they are, their records, the scheduling maths) belong to the server's public API:
``splice.server.jobs``, stored through ``splice.server.odb``.
"""

from splice.server.loop import defer_httpx_cli

defer_httpx_cli()  # before the runner imports httpx: a scheduler never runs httpx's command line

from .policy import Decision, decide, retry_delay  # noqa: E402
from .runner import Scheduler  # noqa: E402

__all__ = ["Decision", "Scheduler", "decide", "retry_delay"]
