"""The admin API's models and the specs are built on first use (``defer_build``), not at import: a server that
never serves an endpoint never pays for its models. A model that cannot be built would then fail on its first
request instead of at start, so this builds every one of them here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pydantic
import pytest

import splice.server.http.schemas

DEFERRING = (
    "splice.server.http.admin_audit",
    "splice.server.channels.specs",
    "splice.server.cache.specs",
    "splice.server.pubsub.specs",
    "splice.server.connections.registry",
)


def modules() -> list[ModuleType]:
    package = splice.server.http.schemas
    found = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return found + [importlib.import_module(name) for name in DEFERRING]


def models() -> list[type[pydantic.BaseModel]]:
    return [
        value
        for module in modules()
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, pydantic.BaseModel) and value.__module__ == module.__name__
    ]


def test_most_models_are_deferred() -> None:
    deferred = [model for model in models() if model.model_config.get("defer_build")]
    assert len(deferred) >= 90, "defer_build=True dropped from the schemas' configs?"


@pytest.mark.parametrize("model", models(), ids=lambda model: f"{model.__module__}.{model.__qualname__}")
def test_every_model_builds(model: type[pydantic.BaseModel]) -> None:
    assert model.model_rebuild(force=True) is True
    assert model.__pydantic_complete__
    model.model_json_schema(mode="validation")
    model.model_json_schema(mode="serialization")
