"""Small line charts as inline SVG, made here in Python (no JavaScript chart library): pure functions of numbers.

A chart is a few series over fixed x slots (the minutes of the last hour), drawn with axes, three labelled values
on the y axis and the time on the x axis. It says in words what it shows (``role="img"`` and a ``<title>`` with
the latest values), and tells series apart by dash pattern and a legend as well as by colour. Every text from
outside (a service's name) is escaped: the result is ``Markup`` that templates put in as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

COLOURS = ("#0a58ca", "#a40e26", "#116329", "#7d4e00", "#6f42c1", "#1b1f24")
"""Series colours (AA contrast on white), in order."""
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
"""And dash patterns, so that series differ in more than colour."""


@dataclass(frozen=True)
class Series:
    """One line: a label for the legend and the title, and one value per slot (``None``: nothing to show there)."""

    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Size:
    width: int = 300
    height: int = 130
    left: int = 44
    """Room for the y axis's labels."""
    bottom: int = 18
    """Room for the x axis's labels."""
    top: int = 8
    right: int = 10
    """Room for a dot at "now" (the last slot sits on the right edge)."""


SMALL = Size(width=190, height=90, left=36, bottom=16, top=6, right=8)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value`` (1 for nothing)."""
    if not value or value <= 0 or math.isnan(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # unreachable: 10 * power >= value always


def number(value: float) -> str:
    """A value short enough for an axis: 0, 0.25, 3.5, 120, 1.5k, 2M."""
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if size >= 1000:
        return f"{value / 1000:.3g}k"
    if size >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"


def minutes_ago(slots: int) -> list[tuple[int, str]]:
    """Labels of the x axis for ``slots`` minutes ending now: ``(slot, text)`` at the start, middle and end."""
    if slots <= 1:
        return [(0, "now")]
    return [(0, f"-{slots} min"), (slots // 2, f"-{slots - slots // 2} min"), (slots - 1, "now")]


def latest(values: Sequence[float | None]) -> float | None:
    """The last value that is not ``None``."""
    return next((v for v in reversed(values) if v is not None), None)


def describe(title: str, series: Sequence[Series], unit: str, fmt: Callable[[float], str]) -> str:
    """The chart in words: what it shows, and each series' latest value and peak."""
    parts = []
    for one in series:
        last = latest(one.values)
        known = [v for v in one.values if v is not None]
        if last is None:
            parts.append(f"{one.label}: no data")
        else:
            parts.append(f"{one.label}: latest {fmt(last)}{unit}, peak {fmt(max(known))}{unit}")
    return f"{title}. " + "; ".join(parts) + "."


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    unit: str = "",
    size: Size | None = None,
    fmt: Callable[[float], str] = number,
    floor: float = 0.0,
) -> Markup:
    """An SVG line chart of ``series`` (all of one length: the slots, oldest first) titled ``title``.

    The y axis goes from 0 to a round value at or above the largest (at least ``floor``); a gap in a series
    (``None``) breaks its line; a lone point is drawn as a dot. ``unit`` follows values in the words."""
    box = size or Size()
    slots = max((len(s.values) for s in series), default=0)
    known = [v for s in series for v in s.values if v is not None]
    top = nice_ceiling(max([*known, floor]) if known else floor)
    plot_w, plot_h = box.width - box.left - box.right, box.height - box.top - box.bottom
    x0, y0 = box.left, box.top + plot_h  # the origin, bottom left

    def x(slot: int) -> float:
        return x0 + (plot_w * slot / (slots - 1) if slots > 1 else plot_w)

    def y(value: float) -> float:
        return y0 - plot_h * min(value, top) / top

    words = escape(describe(title, series, unit, fmt))
    out = [
        f'<svg class="chart" role="img" width="{box.width}" height="{box.height}"'
        f' viewBox="0 0 {box.width} {box.height}" aria-label="{words}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{words}</title>",
        f'<rect x="{x0}" y="{box.top}" width="{plot_w}" height="{plot_h}" fill="#f6f8fa"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):  # grid lines and the y axis's labels
        gy = round(y0 - plot_h * fraction, 1)
        colour = "#57606a" if fraction == 0 else "#d0d7de"
        out.append(f'<line x1="{x0}" y1="{gy}" x2="{x0 + plot_w}" y2="{gy}" stroke="{colour}" stroke-width="1"/>')
        out.append(
            f'<text x="{x0 - 4}" y="{gy + 4}" text-anchor="end" font-size="11" fill="#57606a">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    out.append(f'<line x1="{x0}" y1="{box.top}" x2="{x0}" y2="{y0}" stroke="#57606a" stroke-width="1"/>')
    for slot, text in minutes_ago(slots):
        anchor = "start" if slot == 0 else "end" if slot == slots - 1 else "middle"
        out.append(
            f'<text x="{round(x(slot), 1)}" y="{box.height - 4}" text-anchor="{anchor}" font-size="11"'
            f' fill="#57606a">{escape(text)}</text>'
        )
    for index, one in enumerate(series):
        out.extend(_line(one, index, x, y))
    out.append("</svg>")
    return Markup("".join(out))


def _line(one: Series, index: int, x: Callable[[int], float], y: Callable[[float], float]) -> list[str]:
    """The polylines of one series (one per run of values without a gap), and a dot for a lone value."""
    colour, dash = COLOURS[index % len(COLOURS)], DASHES[index % len(DASHES)]
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    runs: list[list[tuple[float, float]]] = [[]]
    for slot, value in enumerate(one.values):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((round(x(slot), 1), round(y(value), 1)))
    out = []
    for run in runs:
        if len(run) == 1:
            out.append(f'<circle cx="{run[0][0]}" cy="{run[0][1]}" r="2.5" fill="{colour}"/>')
        elif run:
            points = " ".join(f"{px},{py}" for px, py in run)
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"'
                f' stroke-linejoin="round"{dashed}/>'
            )
    return out


def legend(series: Sequence[Series]) -> Markup:
    """A legend for ``line_chart``'s series: a short sample of each line (its colour and dash) and its label."""
    items = []
    for index, one in enumerate(series):
        colour, dash = COLOURS[index % len(COLOURS)], DASHES[index % len(DASHES)]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        sample = (
            f'<svg width="24" height="10" aria-hidden="true" focusable="false"><line x1="0" y1="5" x2="24" y2="5"'
            f' stroke="{colour}" stroke-width="2"{dashed}/></svg>'
        )
        items.append(f"<li>{sample} {escape(one.label)}</li>")
    return Markup('<ul class="legend">' + "".join(items) + "</ul>")


__all__ = ["COLOURS", "DASHES", "SMALL", "Series", "Size", "describe", "latest", "legend", "line_chart", "nice_ceiling"]
