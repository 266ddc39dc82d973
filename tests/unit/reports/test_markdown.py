"""The Markdown summary for a pull-request comment: verdicts, numbers, what failed."""

from __future__ import annotations

import dataclasses
import re

from conveyor.reports import RunReport, render_markdown
from conveyor.reports.markdown import MAX_ROWS, md
from conveyor.reports.sections import CheckRow, GateSection


def test_summary_has_the_metrics_table_with_intervals(full_report: RunReport) -> None:
    text = render_markdown(full_report)
    evaluation = full_report.evaluations[0].evaluation
    assert "| metric | value | 95% interval |" in text
    for name, value in evaluation.metrics.items():
        interval = evaluation.intervals[name]
        row = f"| {md(name)} | {value:.4g} | [{interval.low:.4g}, {interval.high:.4g}] |"
        assert row in text


def test_summary_gives_the_gate_verdict_and_every_reason(full_report: RunReport) -> None:
    text = render_markdown(full_report)
    assert "**Model gate** (validate\\_model): **❌ not blessed**" in text
    for reason in full_report.gates[0].reasons:
        assert f"- {md(reason)}" in text
    blessed = dataclasses.replace(
        full_report,
        gates=(GateSection(step="gate", blessed=True, reasons=(), results=()),),
    )
    assert "**Model gate** (gate): **✅ blessed**" in render_markdown(blessed)


def test_run_metrics_outside_the_evaluation_get_their_own_table(full_report: RunReport) -> None:
    text = render_markdown(full_report)
    assert "**Metrics**" in text
    assert "| odd | n/a |" in text and "| none | n/a |" in text
    assert "| roc\\_auc |" in text and text.count("| roc\\_auc |") == 1  # not twice


def test_summary_lists_failures_drifted_features_and_anomalies(full_report: RunReport) -> None:
    text = render_markdown(full_report)
    assert "**Failed steps**" in text and "- train: ValueError: &lt;script&gt;" in text
    assert re.search(r"^\| income \| ks \| D = ", text, re.M)
    assert "**Data validation** (validate\\_data): ❌" in text
    assert "**Checks**: 1 passed, 2 failed" in text


def test_user_strings_cannot_become_markup_or_break_a_table(full_report: RunReport) -> None:
    text = render_markdown(full_report)
    assert "<script" not in text and "<b>" not in text
    assert md("a|b\nc *d* [e](f) `g`") == "a\\|b c \\*d\\* \\[e\\](f) \\`g\\`"
    assert md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"


def test_long_lists_are_cut_with_a_count(full_report: RunReport) -> None:
    many = tuple(
        CheckRow(step="s", name=f"c{i}", kind="data", passed=False, severity="error")
        for i in range(MAX_ROWS + 5)
    )
    text = render_markdown(dataclasses.replace(full_report, checks=many))
    assert "- … and 5 more" in text
    assert "c24" not in text


def test_bare_run_is_a_header_only(bare_report: RunReport) -> None:
    text = render_markdown(bare_report)
    assert text.startswith("### Conveyor run `20260102-030405-abcdef`: ⚠️ running")
    assert "**" not in text.split("\n", 1)[1].replace("**training**", "")
