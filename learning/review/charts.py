"""The dashboard's charts as SVG written here, on the server: no chart library, nothing from a
CDN, nothing for the page's Content-Security-Policy to allow (colours are presentation
attributes, not styles). Each chart carries a ``<title>`` and a ``<desc>`` for screen readers and
``data-*`` attributes that say what it plots, which the browser test reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

W, H = 640, 240  # the viewBox; the page scales it to its width
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 16, 34  # margins: axis labels left, the legend right
COLOURS = ("#2457c5", "#c0392b", "#1e7b34", "#8a5a00", "#7b3fb3", "#0f7c8c", "#5d6677")
AXIS, GRID, MUTED = "#5d6677", "#e4e7ec", "#8a93a3"


def _text(
    x: float, y: float, s: str, *, anchor: str = "start", size: int = 11, fill: str = AXIS
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" '
        f'text-anchor="{anchor}" font-family="system-ui, sans-serif">{escape(s)}</text>'
    )


def _open(kind: str, title: str, points: int) -> list[str]:
    return [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
        f'role="img" data-chart="{kind}" data-points="{points}">',
        f"<title>{escape(title)}</title>",
    ]


def _empty(kind: str, title: str) -> Markup:
    parts = _open(kind, title, 0)
    parts.append(_text(W / 2, H / 2, "no data in this range", anchor="middle", fill=MUTED))
    return Markup("".join(parts) + "</svg>")


@dataclass(frozen=True)
class Marker:
    """A vertical line at one day of a line chart (a new model version first answered)."""

    day: str
    label: str


def line_chart(
    kind: str,
    title: str,
    days: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    markers: Sequence[Marker] = (),
) -> Markup:
    """Shares in [0, 1] per day, one line per series (a model version); ``None`` is a day
    without data for that series (the line breaks there). Axis 0-100 %."""
    points = sum(v is not None for values in series.values() for v in values)
    if not days or not points:
        return _empty(kind, title)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / max(1, len(days) - 1)

    def x(k: int) -> float:
        return LEFT + (k * step if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - max(0.0, min(1.0, v)))

    parts = _open(kind, title, points)
    parts.append(f"<desc>{escape(title)}: {len(series)} series over {len(days)} days</desc>")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(_text(LEFT - 6, y(tick) + 4, f"{tick:.0%}", anchor="end"))
    every = max(1, len(days) // 6)  # at most about seven dates under the axis
    for k, day in enumerate(days):
        if (len(days) - 1 - k) % every == 0:  # counted from the last day, which is labelled
            parts.append(_text(x(k), H - BOTTOM + 16, day[5:], anchor="middle"))
    index = {d: k for k, d in enumerate(days)}
    for m in markers:
        if m.day in index:
            mx = x(index[m.day])
            parts.append(
                f'<line class="marker" data-day="{escape(m.day)}" x1="{mx:.1f}" x2="{mx:.1f}" '
                f'y1="{TOP}" y2="{H - BOTTOM}" stroke="{MUTED}" stroke-width="1" '
                f'stroke-dasharray="4 3"><title>{escape(m.label)}</title></line>'
            )
            parts.append(_text(mx + 3, TOP + 10, m.label, size=10, fill=MUTED))
    for n, (name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for k, v in enumerate(values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{x(k):.1f},{y(v):.1f}")
            parts.append(
                f'<circle class="point" cx="{x(k):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} {escape(days[k])}: {v:.1%}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"/>'
                )
        ly = TOP + 14 + 16 * n
        parts.append(
            f'<rect x="{W - RIGHT + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
        )
        parts.append(_text(W - RIGHT + 28, ly, name[-18:]))
    return Markup("".join(parts) + "</svg>")


def bar_chart(kind: str, title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Horizontal bars, one per (label, value), largest first as given."""
    if not bars or not any(v for _, v in bars):
        return _empty(kind, title)
    row = 20
    height = TOP + row * len(bars) + 8
    label_w = 300
    top = max(v for _, v in bars)
    width = W - label_w - 60
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" '
        f'role="img" data-chart="{kind}" data-points="{len(bars)}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(title)}: {len(bars)} bars</desc>",
    ]
    for k, (label, value) in enumerate(bars):
        by = TOP + k * row
        bw = width * value / top if top else 0
        short = label if len(label) <= 50 else label[:49] + "…"
        parts.append(_text(label_w - 8, by + 13, short, anchor="end", size=10))
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{by + 3}" width="{bw:.1f}" height="{row - 6}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {value:g}{unit}</title></rect>'
        )
        parts.append(_text(label_w + bw + 6, by + 13, f"{value:g}{unit}"))
    return Markup("".join(parts) + "</svg>")
