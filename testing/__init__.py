"""Unit-testing services without a running server.

Installing Splice registers a pytest plugin with the fixture ``splice_services`` (a ``ServiceHarness``);
outside pytest, make a ``ServiceHarness()`` yourself.
"""

from __future__ import annotations

from .connections import HarnessConnections, UnstubbedRequest
from .harness import Call, ServiceHarness

__all__ = ["Call", "HarnessConnections", "ServiceHarness", "UnstubbedRequest"]
