"""A bar chart as numbers an SVG template draws (pure): no script, nothing from a CDN."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 28, 4, 8, 20  # room for the axis labels
MAX_LABELS = 8  # at most this many column labels under the bars


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle: where, how tall, which series, and the value its tooltip names."""

    x: float
    y: float
    width: float
    height: float
    series: int
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """Everything the template draws, in the coordinates of a ``width`` x ``height`` viewBox."""

    width: int
    height: int
    bars: list[Bar]
    x_labels: list[tuple[float, str]]  # (centre x, text)
    y_ticks: list[tuple[float, str]]  # (y, value)
    base: float  # y of the zero line
    left: int = LEFT  # x where the plot starts (the y labels end just before it)


def nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def bar_chart(labels: Sequence[str], series: Sequence[Sequence[int]]) -> BarChart:
    """Grouped bars: one group per label, one bar per series in each group."""
    top = nice_top(max((v for values in series for v in values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / max(len(labels), 1)
    bar_w = group * 0.8 / max(len(series), 1)
    base = TOP + plot_h
    bars = []
    for i, label in enumerate(labels):
        for s, values in enumerate(series):
            height = plot_h * values[i] / top
            x = LEFT + i * group + group * 0.1 + s * bar_w
            bars.append(
                Bar(
                    round(x, 2),
                    round(base - height, 2),
                    round(bar_w, 2),
                    round(height, 2),
                    s,
                    values[i],
                    label,
                )
            )
    every = math.ceil(len(labels) / MAX_LABELS) if labels else 1
    x_labels = [
        (round(LEFT + (i + 0.5) * group, 2), label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    ticks = sorted({0, top // 2, top}) if top > 1 else [0, 1]
    y_ticks = [(round(base - plot_h * t / top, 2), str(t)) for t in ticks]
    return BarChart(WIDTH, HEIGHT, bars, x_labels, y_ticks, base)
