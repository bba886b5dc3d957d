"""The body and answer of ``POST /splice/admin/cluster/events``: cluster events one server sends another."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Whole, answer_config, body_config


class ClusterEvent(BaseModel):
    """One event a server sent (``ClusterMember.send_event``)."""

    model_config = ConfigDict(defer_build=True, strict=True)

    kind: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=100, description="what it is about: cache, pubsub, hello, bye")
    data: Any = None
    origin: str = Field(min_length=1, max_length=200, description="the server that sent it")
    boot: str = Field(min_length=1, max_length=64, description="that server's process (a new one at each start)")
    n: Whole = Field(ge=0, description="its number among that process's events (a hello: how many it sent)")


class EventsBody(BaseModel):
    model_config = body_config(
        {
            "events": [
                {
                    "kind": "event",
                    "event": "cache",
                    "data": {"cache": "default", "op": "delete", "key": "k", "version": [1764680000000000, "s1"]},
                    "origin": "server2",
                    "boot": "9f1c2e3d4b5a6978",
                    "n": 7,
                }
            ]
        }
    )

    events: list[ClusterEvent] = Field(max_length=100_000)


class EventsAnswer(BaseModel):
    model_config = answer_config({"applied": 1})

    applied: int = Field(description="events handed to this server's handlers (repeats and strays are not)")
