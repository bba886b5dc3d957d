"""charts.py and metrics_data.py: pure functions, checked case by case (no cluster, no browser)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from splice.dashboard.charts import SMALL, Series, legend, line_chart, nice_ceiling
from splice.dashboard.charts import number as short
from splice.dashboard.screens import metrics_data as data

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1.0), (-3, 1.0), (0.3, 0.5), (1, 1.0), (1.2, 2.0), (2.1, 2.5), (3, 5.0), (7, 10.0), (99, 100.0), (101, 200.0)],
)
def test_nice_ceiling(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == ceiling


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (0.25, "0.25"), (2.5, "2.5"), (12.4, "12"), (1500, "1.5k"), (2_000_000, "2M")]
)
def test_number_on_an_axis(value: float, text: str) -> None:
    assert short(value) == text


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize(
    ("values", "polylines", "dots"),
    [
        ([1.0, 2.0, 3.0], 1, 0),  # one line
        ([1.0, None, 3.0, 4.0], 1, 1),  # a gap: a lone value is a dot
        ([None, None, None], 0, 0),  # nothing to draw
        ([1.0, 2.0, None, 3.0, 4.0], 2, 0),  # two runs
    ],
)
def test_gaps_break_the_line(values: list[float | None], polylines: int, dots: int) -> None:
    root = parse(line_chart("Requests per second", [Series("requests/s", values)]))
    assert len(root.findall(f"{SVG}polyline")) == polylines
    assert len(root.findall(f"{SVG}circle")) == dots


def test_the_chart_says_in_words_what_it_shows_and_escapes_names() -> None:
    series = [Series("p50", [None, 2.0, 4.0]), Series("p99", [None, 9.0, 12.5])]
    svg = line_chart("Latency, service <shop&co>", series, unit=" ms")
    root = parse(svg)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Latency, service <shop&co>. p50: latest 4 ms, peak 4 ms; p99: latest 12 ms, peak 12 ms."
    assert root.get("aria-label") == title.text
    assert "<shop&co>" not in svg  # escaped in the markup


def test_axes_are_labelled_with_round_values_and_the_time() -> None:
    root = parse(line_chart("Requests per second", [Series("requests/s", [0.0] * 59 + [3.2])]))
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert texts == ["0", "2.5", "5", "-60 min", "-30 min", "now"]


def test_a_value_at_the_top_touches_the_top_and_zero_the_axis() -> None:
    root = parse(line_chart("x", [Series("x", [0.0, 10.0])], size=SMALL))
    points = root.find(f"{SVG}polyline").get("points")  # type: ignore[union-attr]
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in points.split())
    assert (x0, y0) == (SMALL.left, SMALL.height - SMALL.bottom)
    assert (x1, y1) == (SMALL.width - SMALL.right, SMALL.top)


def test_series_differ_by_dash_as_well_as_colour_and_the_legend_says_which() -> None:
    series = [Series("server1", [1.0, 2.0]), Series("server2", [2.0, 1.0])]
    lines = parse(line_chart("x", series)).findall(f"{SVG}polyline")
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[0].get("stroke-dasharray") != lines[1].get("stroke-dasharray")
    assert re.findall(r"</svg> (server\d)</li>", legend(series)) == ["server1", "server2"]


MINUTE = 60 * 1_000_000  # a minute number; its slots are minutes MINUTE-59 .. MINUTE


def answer(minutes: list[tuple[int, int, int, float | None, float | None]], calls: int, errors: int) -> dict:
    return {
        "calls": calls,
        "errors": errors,
        "p50_ms": 2.0,
        "p99_ms": 9.0,
        "minutes": [
            {"at": (MINUTE - ago) * 60, "calls": c, "errors": e, "p50_ms": p50, "p99_ms": p99}
            for ago, c, e, p50, p99 in minutes
        ],
    }


@pytest.mark.parametrize(
    ("minutes", "calls", "errors", "p50"),
    [
        ([(0, 6, 0, 1.0, 2.0)], {59: 6}, {}, {59: 1.0}),  # this minute is the last slot
        ([(59, 3, 1, 4.0, 8.0)], {0: 3}, {0: 1}, {0: 4.0}),  # an hour ago (almost) is the first
        ([(60, 3, 1, 4.0, 8.0)], {}, {}, {}),  # older: left out
        ([(5, 1, 0, 1.0, 1.0), (2, 2, 2, None, None)], {54: 1, 57: 2}, {57: 2}, {54: 1.0}),
    ],
)
def test_minutes_become_slots_of_the_last_hour(minutes, calls, errors, p50) -> None:
    slots = data.slots_of(answer(minutes, 10, 1), MINUTE)
    assert {i: c for i, c in enumerate(slots.calls) if c} == calls
    assert {i: e for i, e in enumerate(slots.errors) if e} == errors
    assert {i: v for i, v in enumerate(slots.p50) if v is not None} == p50
    assert (slots.total_calls, slots.total_errors) == (10, 1)


def test_servers_combine_calls_add_p50_weighs_p99_is_the_highest() -> None:
    one = data.slots_of(answer([(0, 30, 3, 2.0, 10.0)], 30, 3), MINUTE)
    two = data.slots_of(answer([(0, 10, 0, 6.0, 50.0)], 10, 0), MINUTE)
    both = data.combine([one, two])
    assert (both.calls[59], both.errors[59], both.p50[59], both.p99[59]) == (40, 3, 3.0, 50.0)
    assert data.rate(both)[59] == pytest.approx(40 / 60)
    assert data.error_rate(both)[59] == pytest.approx(7.5)
    assert data.error_rate(both)[0] is None  # no calls: no rate, not 0 %
    assert (both.total_calls, both.total_errors, both.total_p99) == (40, 3, 9.0)


@pytest.mark.parametrize(
    ("query", "limit", "names"),
    [("", 20, ["b.busy", "a.mid", "c.idle"]), ("", 2, ["b.busy", "a.mid"]), ("MID", 20, ["a.mid"]), ("zzz", 20, [])],
)
def test_the_busiest_services_or_those_found(query: str, limit: int, names: list[str]) -> None:
    def calls(n: int) -> data.Slots:
        return data.Slots(total_calls=n)

    services = {"a.mid": {"s1": calls(5)}, "b.busy": {"s1": calls(7), "s2": calls(9)}, "c.idle": {"s1": calls(0)}}
    assert data.busiest(services, query, limit) == names
