"""Every answer a service's payload becomes is valid JSON (or a clear 500 naming where and why), on every channel.

Served by Hypercorn in this process (``test_websocket.live``), with real clients: REST and JSON-RPC over httpx,
WebSocket over ``websockets``. The unit part checks ``core.jsonvalues`` directly (pure).
"""

from __future__ import annotations

import json
import math
import textwrap
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import httpx
import pytest

from splice.server.core.jsonvalues import Unencodable, dumps
from tests.server.http.test_websocket import Live, ask, client, live

__all__ = ["live"]

CASES = textwrap.dedent(
    """
    import datetime, decimal, enum, uuid

    from splice.server import Service

    class Colour(enum.Enum):
        RED = "red"

    cycle = {"a": 1}
    cycle["self"] = cycle

    VALUES = {
        "nan": {"x": float("nan")},
        "inf": [1, float("inf")],
        "cycle": cycle,
        "set": {"items": [{}, {}, {"tags": {1, 2, 3}}]},
        "object": {"o": object()},
        "datetime": {"at": datetime.datetime(2026, 12, 3, 8, 1, 2, tzinfo=datetime.timezone.utc)},
        "uuid": {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        "decimal": {"price": decimal.Decimal("12.30")},
        "enum": {"colour": Colour.RED},
    }

    class Answer(Service):
        name = "json.answer"

        def handle(self):
            self.response.payload = VALUES[self.request.payload["case"]]
    """
)
REFUSED = {
    "nan": ("nan at $.x", "JSON has no NaN or Infinity"),
    "inf": ("inf at $[1]", "JSON has no NaN or Infinity"),
    "cycle": ("a dict at $.self", "a cycle"),
    "set": ("a set at $.items[2].tags", "JSON has no sets"),
    "object": ("an object at $.o", "JSON cannot carry it"),
}
ENCODED = {
    "datetime": {"at": "2026-12-03T08:01:02+00:00"},
    "uuid": {"id": "12345678-1234-5678-1234-567812345678"},
    "decimal": {"price": "12.30"},
    "enum": {"colour": "red"},
}


async def _deploy(live: Live) -> None:
    deployed = await live.admin.post("/splice/admin/deploy", json={"modules": [{"path": "cases.py", "source": CASES}]})
    assert deployed.status_code == 200, deployed.text


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


async def test_rest_answers_valid_json_or_a_500_naming_the_place_with_the_cid(live: Live) -> None:
    await _deploy(live)
    body = {"name": "cases", "path": "/cases", "service": "json.answer", "methods": ["POST"]}
    assert (await live.admin.post("/splice/admin/channels", json=body)).status_code == 201
    problems = []
    async with httpx.AsyncClient(base_url=live.admin.base_url, timeout=30) as http:
        for case in [*REFUSED, *ENCODED]:
            try:
                answer = await http.post("/cases", json={"case": case})
            except httpx.TransportError as exc:
                problems.append(f"{case}: no answer ({exc!r})")
                continue
            cid = answer.headers.get("x-splice-cid")
            try:
                body = _strict(answer.text)
            except (AssertionError, ValueError) as exc:
                problems.append(f"{case}: {answer.status_code} {answer.text[:80]!r} ({exc})")
                continue
            if case in ENCODED:
                if (answer.status_code, body) != (200, ENCODED[case]):
                    problems.append(f"{case}: {answer.status_code} {body}")
                continue
            where, why = REFUSED[case]
            message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
            if not (
                answer.status_code == 500
                and body.get("cid") == cid
                and cid
                and f"service 'json.answer' answered {where}" in message
                and why in message
                and "0x" not in answer.text
            ):
                problems.append(f"{case}: {answer.status_code} {answer.headers.get('connection')} {body}")
    assert not problems, "\n".join(problems)


async def test_jsonrpc_answers_the_call_with_an_error_naming_the_place(live: Live) -> None:
    await _deploy(live)
    body = {"name": "rpc", "kind": "jsonrpc", "path": "/rpc", "services": ["json.*"]}
    assert (await live.admin.post("/splice/admin/channels", json=body)).status_code == 201
    calls = [{"jsonrpc": "2.0", "method": "json.answer", "params": {"case": case}, "id": case} for case in CASES_ALL]
    async with httpx.AsyncClient(base_url=live.admin.base_url, timeout=30) as http:
        answer = await http.post("/rpc", json=calls)
    assert answer.status_code == 200
    answers = {one["id"]: one for one in _strict(answer.text)}
    for case, expected in ENCODED.items():
        assert answers[case]["result"] == expected
    for case, (where, why) in REFUSED.items():
        data = answers[case]["error"]["data"]
        assert answers[case]["error"]["code"] == -32000
        assert data["code"] == "bad_response"
        assert data["cid"]
        assert f"service 'json.answer' answered {where}" in data["message"]
        assert why in data["message"]


async def test_websocket_replies_with_an_error_frame_and_stays_open(live: Live) -> None:
    await _deploy(live)
    await live.channel("cases-ws", "/cases-ws", "json.answer")
    async with client(live, "/cases-ws") as ws:
        for case in CASES_ALL:
            reply = await ask(ws, {"case": case})
            if case in ENCODED:
                assert reply == ENCODED[case]
            else:
                where, why = REFUSED[case]
                assert reply["error"]["code"] == "bad_response"
                assert reply["cid"]
                assert f"answered {where}" in reply["error"]["message"]
                assert why in reply["error"]["message"]


CASES_ALL = [*REFUSED, *ENCODED]


class Colour(Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}, '{"at":"2026-01-02T03:04:05+00:00"}'),
        ([date(2026, 1, 2), time(3, 4)], '["2026-01-02","03:04:00"]'),
        (UUID(int=1), '"00000000-0000-0000-0000-000000000001"'),
        (Decimal("0.10"), '"0.10"'),
        ({"c": Colour.RED, "t": (1, "é")}, '{"c":"red","t":[1,"é"]}'),
    ],
)
def test_well_known_types_are_encoded_on_purpose(value: Any, text: str) -> None:
    assert dumps(value).decode() == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "nan at $: JSON has no NaN or Infinity"),
        ({"a": [0, -math.inf]}, "-inf at $.a[1]: JSON has no NaN or Infinity"),
        ({"a b": {1}}, 'a set at $["a b"]: JSON has no sets (send a sorted list)'),
        ([b"x"], "bytes at $[0]: JSON has no bytes (send base64.b64encode(data).decode())"),
        ({(1, 2): 3}, "a key of type tuple at $: JSON object keys are strings (str, int, float, bool or None)"),
        ({"d": Decimal("NaN")}, "Decimal('NaN') at $.d: JSON has no NaN or Infinity"),
        ("\ud800", "a string with a lone surrogate at $: it is not Unicode text"),
    ],
)
def test_what_json_cannot_carry_is_refused_naming_the_place(value: Any, message: str) -> None:
    with pytest.raises(Unencodable) as refused:
        dumps(value)
    assert str(refused.value) == message


def test_a_cycle_is_named_where_it_closes() -> None:
    value: dict[str, Any] = {"list": [1]}
    value["list"].append(value)
    with pytest.raises(Unencodable, match=r"^a dict at \$\.list\[1\]: a cycle"):
        dumps(value)
