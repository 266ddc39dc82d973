"""The HTML report: one well-formed page, each section only when there is data for it,
every string from the run escaped, nothing loaded from elsewhere."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from conveyor.reports import RunReport, render_html
from conveyor.reports.html import check_groups

SECTIONS = ("steps", "metrics", "checks", "evaluation", "gate", "validation", "drift", "notes")


class Page(HTMLParser):
    """Fails on a tag closed out of order; records elements and their attributes."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        self.stack.pop()

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.seen if a.get("id")}

    def tags(self) -> set[str]:
        return {t for t, _ in self.seen}


def test_full_report_is_well_formed_with_every_section(full_report: RunReport) -> None:
    text = render_html(full_report)
    page = Page(text)
    assert page.stack == []
    assert set(SECTIONS) <= page.ids()
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        ET.fromstring(svg)
    assert text.count('class="chart calibration-chart"') == 1
    metrics = full_report.evaluations[0].evaluation.metrics
    assert text.count('class="chart interval-chart"') == sum(
        v is not None for v in metrics.values()
    )


def test_report_is_self_contained(full_report: RunReport) -> None:
    text = render_html(full_report)
    page = Page(text)
    assert not page.tags() & {"script", "link", "img", "iframe", "object"}
    urls = [v for _, a in page.seen for k, v in a.items() if k in ("src", "href") and v]
    assert all(u.startswith("#") for u in urls)
    assert "url(" not in text and "@import" not in text


def test_user_strings_are_escaped_everywhere(full_report: RunReport) -> None:
    text = render_html(full_report)
    assert "<script" not in text and "<b>north" not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # the param, the step error, the failed check, the anomaly and drift tables, the note
    assert text.count(escaped) >= 6
    assert "&lt;b&gt;north&lt;/b&gt;" in text  # a category label inside the histogram


def test_bare_report_omits_every_section(bare_report: RunReport) -> None:
    text = render_html(bare_report)
    page = Page(text)
    assert page.stack == []
    assert not page.ids() & set(SECTIONS)
    assert "<svg" not in text and "<nav></nav>" in text
    assert "(not a git repository)" in text and "running" in text


@pytest.mark.parametrize("kept", ["evaluations", "gates", "validations", "drifts"])
def test_each_section_appears_only_with_its_data(full_report: RunReport, kept: str) -> None:
    empty = {
        name: ()
        for name in ("steps", "checks", "evaluations", "gates", "validations", "drifts", "notes")
    }
    only = dataclasses.replace(
        full_report, **{**empty, kept: getattr(full_report, kept)}, metrics={}
    )
    ids = Page(render_html(only)).ids() & set(SECTIONS)
    assert ids == {{"evaluations": "evaluation", "gates": "gate"}.get(kept, kept.rstrip("s"))}


def test_header_shows_commit_params_duration_and_the_gate_verdict(full_report: RunReport) -> None:
    text = render_html(full_report)
    assert "0123456789ab + uncommitted changes" in text
    assert "<code>n_estimators</code> = 200" in text
    assert "1 min 23 s" in text and "2026-01-02 03:04:05 UTC" in text
    assert "not blessed" in text  # roc_auc >= 0.99 is out of reach


def test_gate_lists_every_reason(full_report: RunReport) -> None:
    text = render_html(full_report)
    for reason in full_report.gates[0].reasons:
        assert f"<li>{reason.replace('>', '&gt;').replace('<', '&lt;')}</li>" in text


def test_failed_steps_show_their_error(full_report: RunReport) -> None:
    text = render_html(full_report)
    assert "train failed" in text and "ValueError: &lt;script&gt;" in text


def test_missing_and_nan_metrics_read_n_a(full_report: RunReport) -> None:
    text = render_html(full_report)
    assert '<td>odd</td><td class="n">n/a</td>' in text
    assert '<td>none</td><td class="n">n/a</td>' in text


def test_drift_draws_a_histogram_for_each_drifted_feature_only(full_report: RunReport) -> None:
    text = render_html(full_report)
    drifted = [f.column for f in full_report.drifts[0].features if f.drifted]
    assert "income" in drifted and "age" not in drifted
    assert text.count('class="chart histogram-chart"') == len(drifted)
    assert "histogram of income, reference against current" in text


def test_checks_are_grouped_with_failures_first(full_report: RunReport) -> None:
    groups = check_groups(full_report.checks)
    assert [(s, k) for s, k, _ in groups] == [("validate_data", "data"), ("check_drift", "data")]
    assert [c.passed for c in groups[0][2]] == [False, True]
