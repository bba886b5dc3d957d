"""Bodies and answers of deploying: deploy, undeploy, rollback, the modules and their history."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .common import BY_MAX, SERVERS_EXAMPLE, ServerOutcome, Whole, answer_config, body_config

MODULE_PATH_MAX = 500
"""The longest module path (the ODB's column)."""
ModulePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MODULE_PATH_MAX,
        description="relative to the project root",
        examples=["shop/orders.py"],
    ),
]
By = Annotated[str, Field(max_length=BY_MAX, description="who asks, for the history (default admin-api)")]
SOURCE = (
    'from splice.server import Service\n\n\nclass Ping(Service):\n    name = "shop.ping"\n\n'
    '    def handle(self):\n        self.response.payload = "pong"\n'
)
TIMINGS = {
    "validate_ms": 1.2,
    "isolate_ms": 9.5,
    "persist_ms": 3.1,
    "load_ms": 2.0,
    "total_ms": 14.8,
    "cluster_ms": 12.0,
    "path_ms": 28.0,
}


class ModuleIn(BaseModel):
    model_config = body_config({"path": "shop/ping.py", "source": SOURCE})

    path: ModulePath
    source: str


class DeployBody(BaseModel):
    """Modules deployed together, all or nothing."""

    model_config = body_config({"modules": [{"path": "shop/ping.py", "source": SOURCE}], "deployed_by": "cli:ann"})

    modules: list[ModuleIn] = Field(min_length=1)
    deployed_by: By = "admin-api"


class DeployedModule(BaseModel):
    path: str
    module: str
    version: int
    unchanged: bool
    services: list[str]


_DEPLOYED = {
    "path": "shop/ping.py",
    "module": "shop.ping",
    "version": 3,
    "unchanged": False,
    "services": ["shop.ping"],
}


class DeployAnswer(BaseModel):
    """``status`` is ``deployed`` only if every server confirmed it, else ``partial``."""

    model_config = answer_config(
        {
            "server": "server1",
            "status": "deployed",
            "sequence": 7,
            "modules": [_DEPLOYED],
            "reloaded": [],
            "timings": TIMINGS,
            "servers": SERVERS_EXAMPLE,
        }
    )

    server: str
    status: Literal["deployed", "partial"]
    sequence: int
    modules: list[DeployedModule]
    reloaded: list[str]
    timings: dict[str, float]
    servers: list[ServerOutcome]


class UndeployBody(BaseModel):
    model_config = body_config({"paths": ["shop/ping.py"]})

    paths: list[ModulePath] = Field(min_length=1)
    deployed_by: By = "admin-api"


class UndeployAnswer(BaseModel):
    model_config = answer_config(
        {
            "server": "server1",
            "status": "undeployed",
            "sequence": 8,
            "paths": ["shop/ping.py"],
            "services": ["shop.ping"],
            "total_ms": 4.2,
            "servers": SERVERS_EXAMPLE,
        }
    )

    server: str
    status: Literal["undeployed", "partial"]
    sequence: int
    paths: list[str]
    services: list[str]
    total_ms: float
    servers: list[ServerOutcome]


class RollbackBody(BaseModel):
    """Deploy a stored version of a module again, as a new version."""

    model_config = body_config({"path": "shop/ping.py", "version": 2})

    path: ModulePath
    version: Whole = Field(ge=1)
    deployed_by: By = "admin-api"


class RollbackAnswer(BaseModel):
    model_config = answer_config(
        {
            "server": "server1",
            "status": "rolled_back",
            "path": "shop/ping.py",
            "rolled_back_to": 2,
            "version": 4,
            "sequence": 9,
            "modules": [{**_DEPLOYED, "version": 4}],
            "reloaded": [],
            "timings": TIMINGS,
            "servers": SERVERS_EXAMPLE,
        }
    )

    server: str
    status: Literal["rolled_back", "partial"]
    path: str
    rolled_back_to: int
    version: int
    sequence: int
    modules: list[DeployedModule]
    reloaded: list[str]
    timings: dict[str, float]
    servers: list[ServerOutcome]


class ModuleInfo(BaseModel):
    path: str
    module: str
    version: int
    sha256: str
    sequence: int
    services: list[str]


class ModulesAnswer(BaseModel):
    model_config = answer_config(
        {
            "modules": [
                {
                    "path": "shop/ping.py",
                    "module": "shop.ping",
                    "version": 3,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "sequence": 7,
                    "services": ["shop.ping"],
                }
            ]
        }
    )

    modules: list[ModuleInfo]


class ModuleVersion(BaseModel):
    version: int
    action: str
    """``deploy`` or ``undeploy``."""
    sequence: int
    sha256: str
    deployed_by: str
    deployed_at: str | None
    origin: str | None


class HistoryAnswer(BaseModel):
    model_config = answer_config(
        {
            "path": "shop/ping.py",
            "current": 1,
            "versions": [
                {
                    "version": 1,
                    "action": "deploy",
                    "sequence": 7,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "deployed_by": "cli:ann",
                    "deployed_at": "2026-12-02T10:00:00+00:00",
                    "origin": None,
                }
            ],
        }
    )

    path: str
    current: int | None
    versions: list[ModuleVersion]
