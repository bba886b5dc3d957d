"""The scheduler: a process of its own, one active per cluster, running jobs kept in the ODB through the servers.

``runner.Scheduler`` is the loop, ``policy`` its pure decisions, ``process`` the process around it. The jobs
themselves (what they are, how they are checked and stored) belong to the server: ``splice.server.jobs.spec``,
``splice.server.jobs.triggers``, ``splice.server.jobs.manager``.
"""

from .policy import Decision, decide, retry_delay
from .runner import Scheduler

__all__ = ["Decision", "Scheduler", "decide", "retry_delay"]
