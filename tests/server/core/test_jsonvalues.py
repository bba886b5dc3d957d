"""``core.jsonvalues.dumps`` on its fast path (orjson) says byte for byte what the standard library's encoder says
under the same rules, and refuses what they refuse, naming the place."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splice.server.core.jsonvalues import Unencodable, _default, dumps


def reference(value: Any) -> bytes:
    """What ``dumps`` answered before orjson: the standard library's encoder with the same rules."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default).encode()


def _same_number_text(f: float) -> bool:
    """Whether ``json`` and orjson write ``f`` alike (they differ only for 1e-9 <= |f| < 1e-4: ``1e-07``/``1e-7``)."""
    return not 1e-9 <= abs(f) < 1e-4


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False).filter(_same_number_text)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_the_same_bytes_as_the_standard_library(value: Any) -> None:
    assert dumps(value) == reference(value)


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    L = 3


class Tone(enum.StrEnum):
    DARK = "dark"


class Tagged(dict[str, Any]):
    pass


@dataclasses.dataclass
class Point:
    x: int


ODD = timezone(timedelta(hours=5, minutes=30, seconds=15, microseconds=7))
ENCODED: list[Any] = [
    {"hello": "world"},
    {"a": None, "b": [None]},
    "null",
    {"text": "null inside a string"},
    2**64,
    -(2**63) - 1,
    {7: "seven", 2.5: "half", True: "yes", None: "none"},
    {"at": datetime(2026, 12, 3, 8, 1, 2, 5, tzinfo=UTC)},
    {"at": datetime(2026, 12, 3, 8, 1, 2, tzinfo=ODD), "naive": datetime(2026, 12, 3)},
    [date(2026, 12, 3), time(8, 1, 2, 3), time(8, 1, tzinfo=ODD)],
    {"id": UUID("12345678-1234-5678-1234-567812345678")},
    {"price": Decimal("12.30"), "tiny": Decimal("1E-30")},
    [Colour.RED, Size.L, Tone.DARK],
    {Tone.DARK: 1},
    Tagged(a=1),
    ("a", ("b",)),
    'control \x00\x01\x1f\x7f \u2028 " \\ / \n\t é 🎉',
    [0.0, -0.0, 1e16, 1e-10, 1.5e300, 5e-324, 0.1 + 0.2],
    json.loads("[" * 50 + "1" + "]" * 50),
    json.loads("[" * 300 + "]" * 300),
]


@pytest.mark.parametrize("value", ENCODED, ids=lambda v: type(v).__name__)
def test_well_known_values_as_before(value: Any) -> None:
    assert dumps(value) == reference(value)


def _cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    return loop


REFUSED: list[tuple[Any, str]] = [
    ({"x": math.nan}, "nan at $.x: JSON has no NaN or Infinity"),
    ([1, math.inf], "inf at $[1]: JSON has no NaN or Infinity"),
    ({"deep": [{"n": -math.inf}], "ok": None}, "-inf at $.deep[0].n: JSON has no NaN or Infinity"),
    ({"d": Decimal("NaN")}, "Decimal('NaN') at $.d: JSON has no NaN or Infinity"),
    (_cycle(), "a dict at $.self: a cycle: it contains itself"),
    ({"items": [{}, {"tags": {1, 2}}]}, "a set at $.items[1].tags: JSON has no sets (send a sorted list)"),
    ({"b": b"x"}, "bytes at $.b"),
    ({"p": Point(1)}, f"a {__name__}.Point object at $.p"),
    ({"o": object()}, "an object at $.o"),
    ({(1, 2): 3}, "a key of type tuple at $"),
    ({"s": "\ud800"}, "a string with a lone surrogate at $.s"),
]


@pytest.mark.parametrize(("value", "message"), REFUSED, ids=[m.split(" at ")[0] for _, m in REFUSED])
def test_refused_naming_the_place(value: Any, message: str) -> None:
    with pytest.raises(Unencodable) as refused:
        dumps(value)
    assert str(refused.value).startswith(message)


def test_orjson_writes_small_floats_without_the_exponents_padding() -> None:
    """The one difference from the standard library's bytes (the same number; orjson is the fast path)."""
    assert dumps([1e-7, 4e-05]) == b"[1e-7,0.00004]"
    assert json.loads(dumps([1e-7, 4e-05])) == [1e-7, 4e-05]
