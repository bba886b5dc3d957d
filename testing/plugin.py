"""The pytest plugin (registered through the ``pytest11`` entry point): the ``splice_services`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import ServiceHarness


@pytest.fixture
def splice_services(request: pytest.FixtureRequest) -> Iterator[ServiceHarness]:
    """A fresh ``ServiceHarness`` whose root is the pytest root directory; its connections closed at the end."""
    harness = ServiceHarness(request.config.rootpath)
    yield harness
    harness.close()
