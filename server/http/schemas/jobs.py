"""Bodies and answers of scheduled jobs (``/splice/admin/jobs...``) and of the scheduler's dispatch endpoint.

The job bodies here document what ``jobs.spec.parse_job`` takes (types, bounds, one trigger); the handlers
still take the JSON object as sent and check it with ``parse_job``, whose 400 ``invalid_job`` names the field
(``handler_checks``): a cron expression's meaning, a time zone or a moment's range are its rules alone.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field, with_config
from pydantic.types import JsonValue
from typing_extensions import TypedDict

from ...channels.specs import Name
from ...jobs.spec import MAX_BACKOFF, MAX_RETRIES
from .common import Whole

ORIGIN_MAX = 500
"""The longest ``created_by`` (the ODB's column for a job's origin)."""
_TRIGGERS = ("interval", "cron", "at", "in", "trigger")
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Units(TypedDict):
    weeks: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    days: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    hours: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    minutes: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    seconds: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]


Units.__pydantic_config__ = ConfigDict(defer_build=True, extra="forbid", strict=True)  # type: ignore[attr-defined]
Moment = Annotated[str, Field(description="ISO-8601 with a time zone", examples=["2026-12-01T10:00:00Z"])]
_FIELDS: dict[str, Any] = {
    "name": Name,
    "service": Name,
    "payload": JsonValue,
    "interval": Annotated[Seconds | Units, Field(description="seconds, or an object of units")],
    "cron": Annotated[str, Field(examples=["*/5 * * * *"])],
    "timezone": Annotated[str, Field(examples=["Europe/Berlin"], description="cron jobs (default UTC)")],
    "at": Moment,
    "in": Annotated[Seconds, Field(description="one run in this many seconds")],
    "trigger": Annotated[dict[str, Any], Field(description="the stored form, as a job's answer shows it")],
    "start": Moment,
    "repeats": Annotated[Whole | None, Field(ge=1, description="interval jobs: how many runs in all")],
    "misfire": Literal["run_once", "skip"],
    "retries": Annotated[Whole, Field(ge=0, le=MAX_RETRIES)],
    "backoff": Annotated[float, Field(gt=0, le=MAX_BACKOFF, allow_inf_nan=False)],
    "paused": bool,
}
_STRICT = ConfigDict(defer_build=True, extra="forbid", strict=True)
_ONE_TRIGGER: dict[str, Any] = {"oneOf": [{"required": [key]} for key in _TRIGGERS]}
_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "nightly-report",
    "service": "reports.build",
    "cron": "0 2 * * *",
    "timezone": "UTC",
}

_typed_dict: Any = TypedDict  # built from the field table, which mypy cannot follow: these are run-time types
JobBody: Any = _typed_dict(
    "JobBody",
    {
        **{key: NotRequired[value] for key, value in _FIELDS.items()},
        "name": Required[Name],
        "service": Required[Name],
        "replace": NotRequired[Annotated[bool, Field(description="change the job of this name if one exists")]],
        "created_by": NotRequired[Annotated[str, Field(max_length=ORIGIN_MAX, description="default admin-api")]],
    },
)
JobBody.__pydantic_config__ = ConfigDict(**_STRICT, json_schema_extra={**_ONE_TRIGGER, "examples": [_CREATE_EXAMPLE]})
JobChange: Any = _typed_dict("JobChange", {key: NotRequired[value] for key, value in _FIELDS.items()})
JobChange.__pydantic_config__ = ConfigDict(**_STRICT, json_schema_extra={"examples": [{"cron": "0 3 * * *"}]})

_JOB: dict[str, Any] = {
    "id": 1,
    "name": "nightly-report",
    "service": "reports.build",
    "payload": None,
    "trigger": {"kind": "cron", "cron": "0 2 * * *", "timezone": "UTC"},
    "misfire": "run_once",
    "retries": 0,
    "backoff": 1.0,
    "paused": False,
    "origin": "admin-api",
    "next_run": "2026-12-03T02:00:00+00:00",
    "last_slot": None,
    "run_now_requested": None,
    "schedule": "cron 0 2 * * * (UTC)",
}


class Job(BaseModel):
    """A stored job: its definition (trigger in the stored form), origin and where the scheduler is with it."""

    model_config = ConfigDict(defer_build=True, extra="allow", json_schema_extra={"examples": [_JOB]})

    id: int
    name: str
    service: str


class ListedJob(Job):
    """A job in the list, with its newest run (as its history shows runs; ``None`` before the first)."""

    last_run: dict[str, Any] | None


class Jobs(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [{"jobs": [_JOB], "scheduler": {"name": "scheduler1", "lease_expires": "2026-12-02T10:00:30Z"}}]
        },
    )

    jobs: list[ListedJob]
    scheduler: dict[str, Any] | None


class DeletedJob(BaseModel):
    model_config = ConfigDict(defer_build=True, json_schema_extra={"examples": [{"deleted": "nightly-report"}]})

    deleted: str


class JobRuns(BaseModel):
    model_config = ConfigDict(defer_build=True, json_schema_extra={"examples": [{"job": "nightly-report", "runs": []}]})

    job: str
    runs: list[dict[str, Any]]


class HistoryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=10_000, description="how many runs, newest first")


class Run(TypedDict, total=False):
    job_id: Required[int]
    slot_us: Required[int]
    job: Required[str]
    service: Required[str]
    cid: Required[str]
    payload: JsonValue
    slot: str | None
    kind: str
    attempt: int
    missed: int


class Dispatch(BaseModel):
    """The scheduler's batch of runs: the server starts them all and streams one JSON line per outcome."""

    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "runs": [
                        {
                            "job_id": 1,
                            "slot_us": 1796212800000000,
                            "job": "nightly",
                            "service": "reports.build",
                            "cid": "5f1c0e7d9a3b4c2d1e0f9a8b",
                        }
                    ],
                    "scheduler": "scheduler1",
                }
            ]
        },
    )

    runs: list[Run]
    scheduler: str = "scheduler"


_OUTCOME: dict[str, Any] = {
    "job_id": 1,
    "slot_us": 1796212800000000,
    "status": "ok",
    "error": None,
    "server": "server1",
}


@with_config(ConfigDict(defer_build=True, json_schema_extra={"examples": [_OUTCOME]}))
class Outcome(TypedDict, total=False):
    """One line of the stream: a run's outcome."""

    job_id: Required[int]
    slot_us: Required[int]
    status: Required[Literal["ok", "failed"]]
    error: str | None
    started_us: int
    finished_us: int
    server: str
