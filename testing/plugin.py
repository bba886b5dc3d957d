"""The pytest plugin (registered through the ``pytest11`` entry point): the ``splice_services`` fixture."""

from __future__ import annotations

import pytest

from .harness import ServiceHarness


@pytest.fixture
def splice_services(request: pytest.FixtureRequest) -> ServiceHarness:
    """A fresh ``ServiceHarness`` whose root is the pytest root directory."""
    return ServiceHarness(request.config.rootpath)
