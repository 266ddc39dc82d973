"""Small SVG charts drawn by hand: no JavaScript, no external files, valid standalone XML.

Text uses ``currentColor`` so a chart follows the page's light or dark colours. Every mark
has a ``class`` (``interval``, ``estimate``, ``diagonal``, ``point``, ``reference``,
``current``) and a ``<title>`` tooltip with its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from conveyor.checks.evaluation import CalibrationBin
from conveyor.reports.sections import Histogram
from conveyor.reports.text import num

SVG_NS = "http://www.w3.org/2000/svg"
ACCENT = "#2f6fb3"
REFERENCE = "#8a99ad"
CURRENT = "#e07b39"
GRID = "#8884"
Scale = Callable[[float], float]
Attrs = dict[str, str | float]
BAND: Attrs = {
    "stroke": ACCENT,
    "stroke_width": "6",
    "stroke_linecap": "round",
    "opacity": "0.5",
    "class_": "interval",
}
ESTIMATE: Attrs = {"fill": ACCENT, "class_": "estimate"}
DIAGONAL: Attrs = {
    "stroke": "currentColor",
    "opacity": "0.5",
    "stroke_dasharray": "4 3",
    "class_": "diagonal",
}
POINT: Attrs = {"fill": ACCENT, "opacity": "0.85", "class_": "point"}


def _f(x: float) -> str:
    return f"{x:.1f}"


def el(tag: str, content: str = "", /, **attrs: str | float) -> str:
    """One element; attribute names use ``_`` for ``-`` (``stroke_width``); text escaped."""
    pairs = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(_f(v) if isinstance(v, float) else str(v))}"'
        for k, v in attrs.items()
    )
    return f"<{tag}{pairs}>{content}</{tag}>" if content else f"<{tag}{pairs}/>"


def title(text: str) -> str:
    return el("title", escape(text))


def svg(width: float, height: float, label: str, body: list[str], css: str = "chart") -> str:
    return el(
        "svg",
        title(label) + "".join(body),
        xmlns=SVG_NS,
        viewBox=f"0 0 {_f(width)} {_f(height)}",
        width=_f(width),
        height=_f(height),
        role="img",
        aria_label=label,
        class_=css,
        font_family="system-ui, sans-serif",
        font_size="11",
    )


def text(x: float, y: float, content: str, anchor: str = "start", **attrs: str | float) -> str:
    return el("text", escape(content), x=x, y=y, text_anchor=anchor, fill="currentColor", **attrs)


# --- bootstrap interval of one metric -----------------------------------------------------


def interval_domain(*values: float | None) -> tuple[float, float]:
    """[0, 1] when every value lies in it (most classification metrics), else padded."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known or all(0.0 <= v <= 1.0 for v in known):
        return 0.0, 1.0
    low, high = min(known), max(known)
    pad = (high - low) * 0.15 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def interval_chart(value: float | None, low: float | None, high: float | None) -> str:
    """A one-row chart: the point estimate over its interval, on the metric's scale (whose
    ends are labelled)."""
    width, left = 240.0, 30.0
    lo, hi = interval_domain(value, low, high)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - 2 * left)

    body = [el("line", x1=x(lo), y1=11.0, x2=x(hi), y2=11.0, stroke=GRID)]
    body += [el("line", x1=x(t), y1=7.0, x2=x(t), y2=15.0, stroke=GRID) for t in (lo, hi)]
    body += [text(x(lo) - 4, 15.0, num(lo), "end", opacity="0.6", font_size="9")]
    body += [text(x(hi) + 4, 15.0, num(hi), "start", opacity="0.6", font_size="9")]
    label = f"{num(value)} on [{num(lo)}, {num(hi)}]"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        label += f"; interval [{num(low)}, {num(high)}]"
        tip = title(f"interval {num(low)} to {num(high)}")
        body.append(el("line", tip, x1=x(low), y1=11.0, x2=x(high), y2=11.0, **BAND))
    if value is not None and math.isfinite(value):
        body.append(el("circle", title(num(value)), cx=x(value), cy=11.0, r="4", **ESTIMATE))
    return svg(width, 22.0, label, body, css="chart interval-chart")


# --- reliability diagram ------------------------------------------------------------------


def calibration_chart(bins: Sequence[CalibrationBin]) -> str:
    """Observed rate against mean predicted probability per non-empty bin, with the diagonal
    of perfect calibration; a point's area grows with its bin's rows."""
    size, left, top = 240.0, 46.0, 10.0

    def x(p: float) -> float:
        return left + p * size

    def y(p: float) -> float:
        return top + (1.0 - p) * size

    body = _calibration_axes(x, y, size, top)
    body.append(el("line", x1=x(0), y1=y(0), x2=x(1), y2=y(1), **DIAGONAL))
    full = [b for b in bins if b.count and b.mean_predicted is not None]
    full = [b for b in full if b.observed_rate is not None]
    points = [(x(b.mean_predicted or 0.0), y(b.observed_rate or 0.0)) for b in full]
    if len(points) > 1:
        path = " ".join(f"{_f(px)},{_f(py)}" for px, py in points)
        body.append(el("polyline", points=path, fill="none", stroke=ACCENT, stroke_width="1.5"))
    most = max((b.count for b in full), default=1)
    for b, (px, py) in zip(full, points, strict=True):
        tip = title(
            f"{b.lower:.2f}-{b.upper:.2f}: {b.count} rows, mean predicted "
            f"{num(b.mean_predicted)}, observed rate {num(b.observed_rate)}"
        )
        r = 2.5 + 4.5 * math.sqrt(b.count / most)
        body.append(el("circle", tip, cx=px, cy=py, r=r, **POINT))
    label = f"reliability diagram of {len(full)} non-empty bins"
    return svg(left + size + 14.0, top + size + 40.0, label, body, css="chart calibration-chart")


def _calibration_axes(x: Scale, y: Scale, size: float, top: float) -> list[str]:
    body = [el("rect", x=x(0), y=y(1), width=size, height=size, fill="none", stroke=GRID)]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(el("line", x1=x(t), y1=y(0), x2=x(t), y2=y(1), stroke=GRID))
        body.append(el("line", x1=x(0), y1=y(t), x2=x(1), y2=y(t), stroke=GRID))
        body.append(text(x(t), y(0) + 14, f"{t:g}", "middle"))
        body.append(text(x(0) - 5, y(t) + 4, f"{t:g}", "end"))
    body.append(text(x(0.5), y(0) + 32, "mean predicted probability", "middle"))
    mid = top + size / 2
    body.append(text(12.0, mid, "observed rate", "middle", transform=f"rotate(-90 12 {_f(mid)})"))
    return body


# --- reference vs current histogram -------------------------------------------------------


def histogram_groups(h: Histogram) -> tuple[list[tuple[int, int]], list[str]]:
    """(reference, current) counts per bin or label, then values outside the bins (numeric)
    or of other labels (categorical) as a last group when there are any; and group names."""
    groups = list(zip(h.reference, h.current, strict=False))
    names = list(h.labels[: len(groups)])
    if h.reference_other or h.current_other:
        groups.append((h.reference_other, h.current_other))
        names.append("other" if h.labels else "outside")
    return groups, names


def histogram_chart(h: Histogram, label: str) -> str:
    """Reference and current bars side by side per bin, as shares of each side's values (so
    samples of different sizes compare); a bar's height is proportional to its count."""
    groups, names = histogram_groups(h)
    totals = (max(sum(g[0] for g in groups), 1), max(sum(g[1] for g in groups), 1))
    top_share = max((max(r / totals[0], c / totals[1]) for r, c in groups), default=0.0) or 1.0
    left, top, plot_h = 44.0, 28.0, 150.0
    plot_w = max(320.0, min(640.0, 26.0 * len(groups)))
    step = plot_w / max(len(groups), 1)
    rotate = bool(h.labels) and max(map(len, names), default=0) * 6.5 > step
    height = top + plot_h + (70.0 if rotate else 40.0)
    body = _histogram_frame(left, top, plot_w, plot_h, top_share, totals)
    base = top + plot_h
    for i, counts in enumerate(groups):
        for j, (count, total, css, colour) in enumerate(
            zip(counts, totals, ("reference", "current"), (REFERENCE, CURRENT), strict=True)
        ):
            bar_h = count / total / top_share * plot_h
            tip = title(f"{css}: {count:,} ({count / total:.1%})")
            x = left + (i + 0.1 + 0.4 * j) * step
            body.append(
                el(
                    "rect",
                    tip,
                    x=x,
                    y=base - bar_h,
                    width=step * 0.4,
                    height=bar_h,
                    fill=colour,
                    class_=css,
                    data_count=str(count),
                )
            )
    if names and not h.labels:  # the "outside" group: set apart by a dashed line
        x = left + (len(groups) - 1) * step
        body.append(el("line", x1=x, y1=top, x2=x, y2=base, stroke=GRID, stroke_dasharray="3 3"))
    body += _x_labels(h, names, left, base, step, rotate)
    return svg(left + plot_w + 12.0, height, label, body, css="chart histogram-chart")


def _histogram_frame(
    left: float, top: float, plot_w: float, plot_h: float, top_share: float, totals: tuple[int, int]
) -> list[str]:
    base = top + plot_h
    body = [
        el(
            "line",
            x1=left,
            y1=base,
            x2=left + plot_w,
            y2=base,
            stroke="currentColor",
            opacity="0.6",
        ),
        el("line", x1=left, y1=top, x2=left + plot_w, y2=top, stroke=GRID),
        text(left - 4, base + 4, "0%", "end"),
        text(
            left - 4, top + 4, f"{top_share:.0%}" if top_share >= 0.1 else f"{top_share:.1%}", "end"
        ),
    ]
    for i, (name, colour, n) in enumerate(
        (("reference", REFERENCE, totals[0]), ("current", CURRENT, totals[1]))
    ):
        x = left + i * 150.0
        body.append(el("rect", x=x, y=6.0, width="10", height="10", fill=colour))
        body.append(text(x + 14, 15.0, f"{name} ({n:,} values)"))
    return body


def _x_labels(
    h: Histogram, names: list[str], left: float, base: float, step: float, rotate: bool
) -> list[str]:
    body: list[str] = []
    if h.labels:
        for i, name in enumerate(names):
            x, y = left + (i + 0.5) * step, base + (12 if rotate else 16)
            shown = name if len(name) <= 14 else name[:13] + "…"
            turn = {"transform": f"rotate(-40 {_f(x)} {_f(y)})"} if rotate else {}
            anchor = "end" if rotate else "middle"
            body.append(
                el(
                    "text",
                    title(name) + escape(shown),
                    x=x,
                    y=y,
                    text_anchor=anchor,
                    fill="currentColor",
                    **turn,
                )
            )
        return body
    edges = list(h.edges)
    if edges:
        every = max(1, math.ceil((len(edges) - 1) / 6))
        for i in sorted({*range(0, len(edges), every), len(edges) - 1}):
            x = left + i * step
            body.append(el("line", x1=x, y1=base, x2=x, y2=base + 4, stroke="currentColor"))
            body.append(text(x, base + 16, num(edges[i]), "middle"))
    if names:  # the "outside" group after the bins, on a line of its own
        body.append(text(left + (len(edges) - 0.5) * step, base + 30, names[-1], "middle"))
    return body
