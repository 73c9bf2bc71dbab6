"""Small line charts as inline SVG, for the live training dashboard.

A matplotlib redraw of a six-panel figure takes 0.1-0.3 s of CPU; the same panels as SVG
text take a few milliseconds, so the dashboard can redraw every half second while taking
well under 1% of the training time, and the browser draws the vectors (sharp at any zoom,
no image to decode). Each chart is a ``<svg>`` string: a frame, "nice" ticks on both axes,
and its series as paths (one path per series, however many points).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FONT = 'font-family="sans-serif"'


@dataclass(frozen=True)
class Series:
    """One series of a chart: ``x`` and ``y`` ``[N]``; ``style`` is ``"line"``, ``"dots"``,
    ``"markers"`` (larger dots) or ``"bars"`` (vertical segments from ``y`` to ``y2``)."""

    x: np.ndarray
    y: np.ndarray
    colour: str
    style: str = "line"
    label: str = ""
    y2: np.ndarray | None = None  #: the other end of each bar (style "bars")


def nice_ticks(low: float, high: float, n: int = 4) -> np.ndarray:
    """About ``n`` round tick values (multiples of 1, 2 or 5 times a power of ten) inside
    ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got [{low}, {high}]")
    if high <= low:
        return np.array([low])
    raw = (high - low) / n
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    count = math.floor((high - first) / step + 1e-9) + 1
    return first + step * np.arange(count)


def _range(values: Sequence[np.ndarray], pad: float) -> tuple[float, float]:
    """The range of the values, widened by ``pad`` of its length on each side (by 1 if
    all values are equal)."""
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    if high == low:
        return low - 1.0, high + 1.0
    return low - pad * (high - low), high + pad * (high - low)


def _label(v: float) -> str:
    """A short tick label: 0.05, 2.5, 475, 50k, 1.5M, 1e-05."""
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    if abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.4g}"


def svg_chart(
    series: Sequence[Series],
    *,
    width: int = 420,
    height: int = 240,
    title: str = "",
    xlabel: str = "",
    hlines: Sequence[tuple[float, str]] = (),
) -> str:
    """A chart of ``series`` (and horizontal lines ``(y, colour)``) as an SVG string."""
    left, right, top, bottom = 44, 8, 20 if title else 8, 30 if xlabel else 18
    xs = [s.x for s in series if len(s.x)]
    ys = [s.y for s in series if len(s.y)] + [
        s.y2 for s in series if s.y2 is not None and len(s.y2)
    ]
    ys += [np.array([y for y, _ in hlines])] if hlines else []
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {FONT}>']
    if title:
        parts.append(
            f'<text x="{left}" y="13" font-size="11" font-weight="bold">{html.escape(title)}</text>'
        )
    plot_w, plot_h = width - left - right, height - top - bottom
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="white" '
        'stroke="#999" stroke-width="0.8"/>'
    )
    finite = [v[np.isfinite(v)] for v in ys]
    finite = [v for v in finite if len(v)]
    if not xs or not finite:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" font-size="10" fill="#777" '
            'text-anchor="middle">no data yet</text></svg>'
        )
        return "".join(parts)
    x0, x1 = 0.0, 1.02 * max(float(np.max(x)) for x in xs) or 1.0  # room for the last marker
    y0, y1 = _range(finite, pad=0.05)
    x_ticks, y_ticks = nice_ticks(x0, x1), nice_ticks(y0, y1)

    def px(x: np.ndarray) -> np.ndarray:
        return left + (np.asarray(x, dtype=np.float64) - x0) / (x1 - x0) * plot_w

    def py(y: np.ndarray) -> np.ndarray:
        return top + (1.0 - (np.asarray(y, dtype=np.float64) - y0) / (y1 - y0)) * plot_h

    for t in x_ticks:
        x = float(px(t))
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 11}" font-size="9" text-anchor="middle">'
            f"{_label(t)}</text>"
        )
    for t in y_ticks:
        y = float(py(t))
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 3}" y="{y + 3:.1f}" font-size="9" text-anchor="end">'
            f"{_label(t)}</text>"
        )
    if xlabel:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{height - 3}" font-size="10" '
            f'text-anchor="middle">{html.escape(xlabel)}</text>'
        )
    for y, colour in hlines:
        yy = float(py(y))
        parts.append(
            f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" '
            f'stroke="{colour}" stroke-dasharray="5,3"/>'
        )
    for s in series:
        parts.append(_path(s, px, py))
    parts.append("</svg>")
    return "".join(parts)


def _path(s: Series, px: object, py: object) -> str:
    """One series as one SVG path."""
    keep = np.isfinite(s.x) & np.isfinite(s.y)
    x, y = px(s.x[keep]), py(s.y[keep])  # type: ignore[operator]
    if not len(x):
        return ""
    if s.style == "line":
        d = "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
        return f'<path d="{d}" fill="none" stroke="{s.colour}" stroke-width="1.5"/>'
    if s.style == "bars":
        y2 = py(s.y2[keep])  # type: ignore[index, operator]
        d = " ".join(f"M{a:.1f},{b:.1f}V{c:.1f}" for a, b, c in zip(x, y, y2, strict=True))
        return f'<path d="{d}" stroke="{s.colour}" stroke-width="1.2"/>'
    # dots: a zero-length segment with a round cap is a dot
    width, opacity = {"dots": (2.5, 0.45), "markers": (6.5, 1.0)}[s.style]
    d = "".join(f"M{a:.1f},{b:.1f}h0" for a, b in zip(x, y, strict=True))
    return (
        f'<path d="{d}" stroke="{s.colour}" stroke-width="{width}" stroke-linecap="round" '
        f'fill="none" opacity="{opacity}"/>'
    )


def legend_html(series: Sequence[Series], extra: Sequence[tuple[str, str]] = ()) -> str:
    """An HTML legend: a coloured swatch and the label of each labelled series, then the
    ``(colour, label)`` pairs of ``extra``."""
    items = [(s.colour, s.label) for s in series if s.label] + list(extra)
    return " ".join(
        f'<span style="white-space:nowrap;margin-right:10px"><span style="display:inline-block;'
        f'width:10px;height:10px;background:{c};margin-right:3px"></span>{html.escape(t)}</span>'
        for c, t in items
    )
