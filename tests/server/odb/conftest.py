"""Fixtures of the ODB repository tests: a migrated ODB with a cluster in it, and a second engine onto it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from splice.server.odb import OdbRepository, connect, migrate

CLUSTER = "odb-test"


async def _open(url: str, migrated: bool) -> OdbRepository:
    engine = connect(url)
    if not migrated:
        await migrate(engine)
    repository = OdbRepository(engine, CLUSTER)
    await repository.ensure_cluster()
    return repository


@pytest.fixture
async def odb(odb_url: str) -> AsyncIterator[OdbRepository]:
    """A migrated ODB with the test's cluster in it."""
    repository = await _open(odb_url, migrated=False)
    try:
        yield repository
    finally:
        await repository.engine.dispose()


@pytest.fixture
async def other(odb: OdbRepository, odb_url: str) -> AsyncIterator[OdbRepository]:
    """The same cluster through an engine (a connection pool) of its own: another server or process, as the ODB
    sees it."""
    repository = await _open(odb_url, migrated=True)
    assert repository.cluster_id == odb.cluster_id
    try:
        yield repository
    finally:
        await repository.engine.dispose()
