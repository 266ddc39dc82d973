"""The run report as a short Markdown summary, sized for a pull-request comment: the verdicts
first, then the numbers, then what failed. Long lists are cut at ``MAX_ROWS`` with a count
of the rest; the HTML report has everything."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from conveyor.reports.html import check_groups
from conveyor.reports.html_data import statistic
from conveyor.reports.html_model import evaluation_heading, interval_note
from conveyor.reports.sections import (
    DriftSection,
    EvaluationSection,
    GateSection,
    RunReport,
    ValidationSection,
)
from conveyor.reports.text import commit, duration, num, value, when

MAX_ROWS = 20
PASS, FAIL, WARN = "✅", "❌", "⚠️"
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """Text safe in a Markdown table cell: no markup, no HTML, no line breaks."""
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", escape(flat, quote=False))


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    rule = ["---:" if i in right else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n… and {len(rows) - MAX_ROWS} more rows in the HTML report")
    return lines


def render_markdown(report: RunReport) -> str:
    """The summary; every string from the run is escaped so it cannot become markup."""
    lines = _header(report)
    for gate in report.gates:
        lines += _gate(gate)
    for evaluation in report.evaluations:
        lines += _evaluation(evaluation)
    lines += _metrics(report)
    for validation in report.validations:
        lines += _validation(validation)
    for drift in report.drifts:
        lines += _drift(drift)
    lines += _checks(report)
    lines += _failures(report)
    return "\n".join(lines).rstrip() + "\n"


def _header(report: RunReport) -> list[str]:
    run = report.run
    mark = {"succeeded": PASS, "failed": FAIL}.get(run.status, WARN)
    lines = [
        f"### Conveyor run `{md(run.id)}`: {mark} {md(run.status)}",
        "",
        f"pipeline **{md(run.pipeline)}** · commit {md(commit(run.git_commit, run.git_dirty))} · "
        f"started {when(run.started_at)} · took {duration(run.duration_s)}",
    ]
    if report.steps:
        counts: dict[str, int] = {}
        for s in report.steps:
            counts[s.status] = counts.get(s.status, 0) + 1
        lines[-1] += " · steps: " + ", ".join(f"{n} {md(k)}" for k, n in counts.items())
    if run.params:
        pairs = ", ".join(f"{md(k)} = {md(value(v))}" for k, v in sorted(run.params.items()))
        lines += ["", f"params: {pairs}"]
    return [*lines, ""]


def _gate(g: GateSection) -> list[str]:
    verdict = f"{PASS} blessed" if g.blessed else f"{FAIL} not blessed"
    lines = [f"**Model gate** ({md(g.step)}): **{verdict}**"]
    if g.from_checks:
        lines.append("(the step failed before storing its verdict; rebuilt from its checks)")
    lines += [""] + [f"- {md(r)}" for r in g.reasons[:MAX_ROWS]] if g.reasons else []
    if len(g.reasons) > MAX_ROWS:
        lines.append(f"- … and {len(g.reasons) - MAX_ROWS} more")
    return [*lines, ""]


def _evaluation(s: EvaluationSection) -> list[str]:
    e = s.evaluation
    level = next(iter(e.intervals.values())).confidence if e.intervals else None
    head = ["metric", "value", f"{level:.0%} interval" if level else "interval"]
    rows = []
    for name, point in e.metrics.items():
        iv = e.intervals.get(name)
        extra = f"[{num(iv.low)}, {num(iv.high)}]" if iv else md(e.undefined.get(name, ""))
        rows.append([md(name), num(point), extra])
    lines = [
        f"**Model evaluation** ({md(s.step)}): {md(evaluation_heading(e))} ({interval_note(e)})",
        "",
        *_table(head, rows, right=[1]),
    ]
    if e.calibration is not None:
        lines += ["", f"Expected calibration error: {num(e.calibration.ece)}"]
    return [*lines, ""]


def _metrics(report: RunReport) -> list[str]:
    """Run metrics not already in an evaluation table."""
    shown = {m for s in report.evaluations for m in s.evaluation.metrics}
    rest = {k: v for k, v in sorted(report.metrics.items()) if k not in shown}
    if not rest:
        return []
    rows = [[md(k), num(v)] for k, v in rest.items()]
    return ["**Metrics**", "", *_table(["metric", "value"], rows, right=[1]), ""]


def _validation(v: ValidationSection) -> list[str]:
    mark = FAIL if v.blocking else WARN if v.anomalies else PASS
    lines = [f"**Data validation** ({md(v.step)}): {mark} {md(v.summary)}"]
    if v.anomalies:
        rows = [
            [md(a.severity), md(a.column), md(a.kind), f"{a.count:,}", md(a.message)]
            for a in v.anomalies
        ]
        head = ["severity", "column", "anomaly", "count", "details"]
        lines += ["", *_table(head, rows, right=[3])]
    return [*lines, ""]


def _drift(d: DriftSection) -> list[str]:
    lines = [f"**Drift** ({md(d.step)}): {FAIL if d.drifted else PASS} {md(d.summary)}"]
    drifted = [f for f in d.features if f.drifted]
    if drifted:
        rows = [
            [
                md(f.column),
                md(f.method),
                md(statistic(f)),
                num(f.p_value) if f.p_value is not None else "-",
                num(f.threshold) if f.threshold is not None else "-",
            ]
            for f in drifted
        ]
        head = ["drifted feature", "method", "statistic", "p-value", "threshold"]
        lines += ["", *_table(head, rows, right=[3, 4])]
    return [*lines, ""]


def _checks(report: RunReport) -> list[str]:
    if not report.checks:
        return []
    failed = [c for _, _, rows in check_groups(report.checks) for c in rows if not c.passed]
    lines = [f"**Checks**: {len(report.checks) - len(failed)} passed, {len(failed)} failed"]
    if failed:
        lines.append("")
        for c in failed[:MAX_ROWS]:
            mark = FAIL if c.severity == "error" else WARN
            lines.append(f"- {mark} {md(c.step)} · {md(c.name)}: {md(c.message)}")
        if len(failed) > MAX_ROWS:
            lines.append(f"- … and {len(failed) - MAX_ROWS} more")
    return [*lines, ""]


def _failures(report: RunReport) -> list[str]:
    failed = [s for s in report.steps if s.status == "failed"]
    if not failed:
        return []
    lines = ["**Failed steps**", ""]
    for s in failed:
        last = (s.error or "").strip().splitlines()[-1:] or ["(no error recorded)"]
        lines.append(f"- {md(s.name)}: {md(last[0])}")
    return [*lines, ""]
