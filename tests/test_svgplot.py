"""Tests of rlcourse.svgplot, the inline SVG charts of the training dashboard."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rlcourse.svgplot import Series, legend_html, nice_ticks, svg_chart

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100_000, [0, 50_000, 100_000]),
        (0, 500, [0, 200, 400]),
        (-0.013, 0.004, [-0.01, -0.005, 0.0]),
        (9.5, 10.5, [9.5, 10.0, 10.5]),
    ],
)
def test_nice_ticks(low: float, high: float, expected: list[float]) -> None:
    ticks = nice_ticks(low, high)
    np.testing.assert_allclose(ticks, expected, atol=1e-12)
    assert ticks.min() >= low - 1e-12 and ticks.max() <= high + 1e-12


def test_nice_ticks_degenerate_and_bad_ranges() -> None:
    np.testing.assert_array_equal(nice_ticks(3.0, 3.0), [3.0])
    with pytest.raises(ValueError, match="tick range must be finite"):
        nice_ticks(0.0, float("inf"))


def paths(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}path")


def test_chart_draws_each_series_as_one_path_in_the_plot_area() -> None:
    x = np.arange(1, 201, dtype=np.float64)
    y = np.sin(x / 10) * 100
    svg = svg_chart(
        [
            Series(x, y, "#123456", "line", "curve"),
            Series(x, y + 5, "#999999", "dots"),
            Series(x[::50], y[::50], "#DD8452", "bars", y2=y[::50] + 20),
        ],
        width=400,
        height=200,
        title="return",
        xlabel="steps",
        hlines=[(50.0, "#C44E52")],
    )
    ET.fromstring(svg)  # well-formed XML
    line, dots, bars = paths(svg)
    assert line.get("stroke") == "#123456"
    points = re.findall(r"(-?\d+\.\d),(-?\d+\.\d)", line.get("d"))
    assert len(points) == 200
    xs = np.array([float(a) for a, _ in points])
    ys = np.array([float(b) for _, b in points])
    assert xs.min() >= 44 and xs.max() <= 400 - 8  # inside the frame's margins
    assert ys.min() >= 20 and ys.max() <= 200 - 30
    assert np.all(np.diff(xs) > 0)
    assert dots.get("d").count("h0") == 200  # one dot per point
    assert bars.get("d").count("V") == 4  # one bar per point
    assert 'stroke-dasharray="5,3"' in svg  # the horizontal line
    assert ">return<" in svg and ">steps<" in svg


def test_chart_skips_non_finite_points_and_shows_no_data() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([1.0, np.nan, 3.0, np.inf])
    (line,) = paths(svg_chart([Series(x, y, "red")]))
    assert len(re.findall(r"\d,\d", line.get("d"))) == 2
    assert "no data yet" in svg_chart([Series(np.array([]), np.array([]), "red")])


def test_legend_lists_labelled_series_and_extras() -> None:
    legend = legend_html(
        [
            Series(np.zeros(1), np.zeros(1), "red", label="a <b>"),
            Series(np.zeros(1), np.zeros(1), "blue"),
        ],
        extra=[("green", "threshold")],
    )
    assert "a &lt;b&gt;" in legend and "threshold" in legend
    assert legend.count("background:") == 2
