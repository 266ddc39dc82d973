"""HTML of the model sections: evaluation (metrics with intervals, calibration, confusion
matrix, slices) and the model gate's verdict with every reason."""

from __future__ import annotations

from conveyor.checks.evaluation import Evaluation, SliceMetrics
from conveyor.reports.markup import (
    article,
    bullets,
    esc,
    figure,
    para,
    section,
    table,
    verdict_badge,
)
from conveyor.reports.sections import EvaluationSection, GateSection
from conveyor.reports.svg import ACCENT, calibration_chart, interval_chart
from conveyor.reports.text import num, value


def evaluation_heading(e: Evaluation) -> str:
    head = f"{e.task} evaluation of {e.n:,} rows"
    if e.classes:
        head += f"; classes {', '.join(value(c) for c in e.classes)}"
    if e.threshold is not None:
        head += f"; positive when score >= {e.threshold:g}"
    return head


def interval_note(e: Evaluation) -> str:
    if not e.intervals:
        return "no bootstrap intervals"
    level = next(iter(e.intervals.values())).confidence
    return f"{level:.0%} percentile bootstrap intervals, {e.resamples:,} resamples, seed {e.seed}"


def evaluation_section(evaluations: tuple[EvaluationSection, ...]) -> str:
    if not evaluations:
        return ""
    return section("evaluation", "Model evaluation", [_evaluation(s) for s in evaluations])


def _evaluation(s: EvaluationSection) -> str:
    e = s.evaluation
    body = [para(esc(f"{evaluation_heading(e)} ({interval_note(e)})"), "muted"), _metrics(e)]
    charts = []
    if e.calibration is not None:
        caption = f"Calibration: expected calibration error {num(e.calibration.ece)}"
        charts.append(figure(calibration_chart(e.calibration.bins), esc(caption)))
    if e.confusion_matrix:
        caption = "Confusion matrix: rows are true classes, columns predicted"
        charts.append(figure(_confusion(e), esc(caption)))
    if charts:
        body.append(f'<div class="charts">{"".join(charts)}</div>')
    if e.slices:
        body += ["<h4>Slices</h4>", _slices(e)]
    if e.notes:
        body.append(bullets(esc(n) for n in e.notes))
    return article(esc(s.step), body)


def _metrics(e: Evaluation) -> str:
    rows = []
    for name, point in e.metrics.items():
        iv = e.intervals.get(name)
        low, high = (iv.low, iv.high) if iv else (None, None)
        note = e.undefined.get(name, "")
        chart = interval_chart(point, low, high) if point is not None else ""
        bounds = f"[{num(low)}, {num(high)}]" if iv else ""
        rows.append([esc(name), esc(num(point)), esc(bounds), chart, esc(note)])
    head = ["metric", "value", "interval", "", "note"]
    return table(head, rows, right=[1, 2], css="metrics")


def _confusion(e: Evaluation) -> str:
    classes = [esc(value(c)) for c in e.classes]
    head = "<tr><th>true \\ predicted</th>" + "".join(f'<th class="n">{c}</th>' for c in classes)
    rows = []
    for label, counts in zip(classes, e.confusion_matrix, strict=False):
        total = sum(counts) or 1
        cells = "".join(
            f'<td class="n" style="background:{ACCENT}{round(count / total * 0.6 * 255):02x}">'
            f"{count:,}</td>"
            for count in counts
        )
        rows.append(f"<tr><th>{label}</th>{cells}</tr>")
    return f'<table class="confusion">{head}</tr>{"".join(rows)}</table>'


def _slice_label(s: SliceMetrics) -> str:
    return f"{s.column} = {'(missing)' if s.value is None else value(s.value)}"


def _slices(e: Evaluation) -> str:
    names = list(e.metrics)
    rows = [
        [
            esc(_slice_label(s)),
            esc(f"{s.n:,}") + (' <span class="muted">(small)</span>' if s.small else ""),
            *(esc(num(s.metrics.get(m))) for m in names),
        ]
        for s in e.slices
    ]
    return table(["slice", "rows", *names], rows, right=range(1, len(names) + 2))


def gate_section(gates: tuple[GateSection, ...]) -> str:
    if not gates:
        return ""
    return section("gate", "Model gate", [_gate(g) for g in gates])


def _gate(g: GateSection) -> str:
    verdict = "blessed" if g.blessed else "not blessed"
    body = [para(f'<span class="badge verdict {"pass" if g.blessed else "fail"}">{verdict}</span>')]
    if g.from_checks:
        body.append(
            para("The step failed before it stored its verdict; rebuilt from its checks.", "muted")
        )
    body.append(bullets(esc(r) for r in g.reasons) or para("Every check passed.", "muted"))
    rows = [
        [verdict_badge(r.passed, r.severity), esc(r.name), esc(r.message)]
        for r in sorted(g.results, key=lambda r: r.passed)
    ]
    if rows:
        body.append(table(["result", "check", "message"], rows))
    return article(esc(g.step), body)
