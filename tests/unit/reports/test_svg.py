"""The hand-drawn SVG charts: well-formed XML, marks where the numbers put them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conveyor.checks.evaluation import CalibrationBin
from conveyor.reports.sections import Histogram
from conveyor.reports.svg import (
    calibration_chart,
    histogram_chart,
    interval_chart,
    interval_domain,
)

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")
    return root


def marks(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iterfind(f".//s:{tag}", NS) if css in (e.get("class") or "").split()]


def test_interval_chart_puts_the_estimate_inside_its_interval() -> None:
    root = parse(interval_chart(0.8, 0.7, 0.9))
    (band,) = marks(root, "line", "interval")
    (dot,) = marks(root, "circle", "estimate")
    low, high, at = float(band.get("x1")), float(band.get("x2")), float(dot.get("cx"))
    assert low < at < high
    assert at - low == pytest.approx(high - at, abs=0.2)  # 0.8 is midway between 0.7 and 0.9


def test_interval_chart_without_an_interval_or_a_value() -> None:
    root = parse(interval_chart(0.5, None, None))
    assert not marks(root, "line", "interval") and len(marks(root, "circle", "estimate")) == 1
    root = parse(interval_chart(float("nan"), None, None))
    assert not marks(root, "circle", "estimate")


def test_interval_domain_is_the_unit_interval_for_bounded_metrics_else_padded() -> None:
    assert interval_domain(0.93, 0.9, 0.95) == (0.0, 1.0)
    low, high = interval_domain(12.0, 10.0, 15.0)
    assert low < 10.0 and high > 15.0
    assert interval_domain(None, None, None) == (0.0, 1.0)


def bins(*cells: tuple[int, float | None, float | None]) -> list[CalibrationBin]:
    k = len(cells)
    return [
        CalibrationBin(lower=i / k, upper=(i + 1) / k, count=n, mean_predicted=m, observed_rate=o)
        for i, (n, m, o) in enumerate(cells)
    ]


def test_calibration_diagram_has_the_diagonal_and_one_point_per_non_empty_bin() -> None:
    root = parse(
        calibration_chart(bins((10, 0.1, 0.2), (0, None, None), (30, 0.55, 0.5), (5, 0.9, 0.7)))
    )
    (diagonal,) = marks(root, "line", "diagonal")
    x1, y1, x2, y2 = (float(diagonal.get(a)) for a in ("x1", "y1", "x2", "y2"))
    assert x2 - x1 == pytest.approx(y1 - y2)  # from (0, 0) up to (1, 1): a 45-degree line
    points = marks(root, "circle", "point")
    assert len(points) == 3
    # a point at (p, p) would lie on the diagonal; (0.55, 0.5) lies just below it
    middle = points[1]
    cx, cy = float(middle.get("cx")), float(middle.get("cy"))
    on_diagonal_y = y1 + (cx - x1) * (y2 - y1) / (x2 - x1)
    assert cy > on_diagonal_y
    assert float(points[1].get("r")) > float(points[2].get("r"))  # 30 rows against 5


def test_calibration_diagram_of_empty_bins_has_no_points() -> None:
    root = parse(calibration_chart(bins((0, None, None), (0, None, None))))
    assert marks(root, "line", "diagonal") and not marks(root, "circle", "point")


def heights(root: ET.Element, css: str) -> list[float]:
    return [float(r.get("height")) for r in marks(root, "rect", css)]


def test_histogram_bar_heights_are_proportional_to_counts() -> None:
    h = Histogram(reference=(10, 20, 40), current=(5, 5, 30), edges=(0.0, 1.0, 2.0, 3.0))
    root = parse(histogram_chart(h, "x"))
    ref, cur = heights(root, "reference"), heights(root, "current")
    assert ref == pytest.approx([ref[2] / 4, ref[2] / 2, ref[2]], abs=0.15)
    assert cur == pytest.approx([cur[2] / 6, cur[2] / 6, cur[2]], abs=0.15)
    # shares of each side's total: current's 30 of 40 is taller than reference's 40 of 70
    assert cur[2] > ref[2]
    assert [r.get("data-count") for r in marks(root, "rect", "current")] == ["5", "5", "30"]


def test_histogram_shows_values_outside_the_reference_range_as_a_last_group() -> None:
    h = Histogram(reference=(3, 3), current=(1, 1), edges=(0.0, 1.0, 2.0), current_other=4)
    root = parse(histogram_chart(h, "x"))
    assert heights(root, "reference")[-1] == 0.0
    assert [r.get("data-count") for r in marks(root, "rect", "current")] == ["1", "1", "4"]
    assert "outside" in "".join(root.itertext())


def test_histogram_labels_are_text_not_markup() -> None:
    label = "<script>alert('x')</script>"
    h = Histogram(reference=(1, 2), current=(2, 1), labels=(label, "b&c"), reference_other=1)
    svg = histogram_chart(h, f"histogram of {label}")
    assert "<script>" not in svg
    root = parse(svg)
    texts = "".join(root.itertext())
    assert label in texts and "b&c" in texts and "other" in texts
    assert len(marks(root, "rect", "reference")) == 3


def test_histogram_of_empty_counts_is_still_well_formed() -> None:
    root = parse(
        histogram_chart(Histogram(reference=(0, 0), current=(0, 0), labels=("a", "b")), "x")
    )
    assert heights(root, "reference") == [0.0, 0.0]
