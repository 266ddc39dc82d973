"""The CI report: Markdown verdict and truncation, JUnit XML parsed back, GitLab metrics,
and the ``ci:`` section of conveyor.yaml."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conveyor.ci.junit import render_gitlab_metrics, render_junit
from conveyor.ci.report import MARKER, render_markdown, truncate
from conveyor.ci.result import (
    Baseline,
    CIResult,
    Comparison,
    MetricDelta,
    ParamChange,
    skipped,
    stage_of,
)
from conveyor.config import parse_config
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import ConfigError


def check(
    name: str, passed: bool, severity: Severity = Severity.ERROR, kind: str = "model"
) -> CheckResult:
    return CheckResult(
        name=name, kind=kind, passed=passed, severity=severity, message=f"{name} said <so>"
    )


def result(*, failing: bool) -> CIResult:
    model = [check("baseline_champion:roc_auc", not failing), check("threshold:log_loss", True)]
    data = [check("drift:age", False, Severity.WARNING, "data"), check("drift", True, kind="data")]
    return CIResult(
        project="p",
        pipeline="training",
        commit="0123456789abcdef",
        dirty=False,
        run_id="20260101-000000-abcdef",
        sample={"n_rows": "500"},
        baseline=Baseline(base_ref="main", commit="fedcba9876543210", run_id="r0", source="store"),
        stages=(
            stage_of("tests", "Tests (pytest)", [check("t::a", True, kind="test")], 1.5),
            stage_of("data", "Data checks", data, 0.2),
            stage_of("model", "Model checks", model, 0.7),
            skipped("serving", "Serving", "turned off"),
        ),
        elapsed_s=2.5,
        comparison=Comparison(
            metrics=(
                MetricDelta(
                    name="roc_auc",
                    baseline=0.80,
                    candidate=0.75,
                    higher_is_better=True,
                    low=0.70,
                    high=0.79,
                    confidence=0.95,
                ),
                MetricDelta(name="log_loss", baseline=0.40, candidate=0.35, higher_is_better=False),
            ),
            params=(ParamChange(name="train.c", baseline=1.0, candidate=0.1),),
            drifted=("age",),
            model_size={"baseline": 1000.0, "candidate": 1500.0},
        ),
    )


def test_the_verdict_comes_first_and_says_why() -> None:
    text = render_markdown(result(failing=True))
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert lines[1].startswith(
        "## ❌ Conveyor CI failed: 1 blocking (model: baseline\\_champion:roc\\_auc)"
    )
    assert "`baseline_champion:roc_auc`: baseline\\_champion:roc\\_auc said &lt;so&gt;" in text
    assert "| roc\\_auc | 0.8 | 0.75 | ▼ -0.05 worse | [0.7, 0.79] |" in text
    assert "| log\\_loss | 0.4 | 0.35 | ▼ -0.05 better | - |" in text
    assert "| train.c | 1.0 | 0.1 |" in text
    assert "`age`" in text and "▲ +50.0%" in text
    assert "found in the metadata store by commit" in text
    assert "| Serving | ⏭️ skipped |" in text
    passed = render_markdown(result(failing=False))
    assert passed.splitlines()[1] == "## ✅ Conveyor CI passed: 5 checks, none blocking, 1 warnings"
    assert "Why it failed" not in passed


@pytest.mark.parametrize("cap", [200, 1000, 5000])
def test_truncate_keeps_within_the_cap_with_a_note(cap: int) -> None:
    text = MARKER + "\n" + "\n".join(f"| row {i} | é漢 |" for i in range(2000))
    cut = truncate(text, max_chars=cap)
    assert len(cut) <= cap and cut.startswith(MARKER) and "report was cut" in cut
    by_bytes = truncate(text, max_bytes=cap)
    assert len(by_bytes.encode()) <= cap and "report was cut" in by_bytes
    assert truncate("short", max_chars=cap) == "short"


def test_junit_parses_back_with_counts_that_match_the_checks() -> None:
    found = result(failing=True)
    root = ET.fromstring(render_junit(found))
    cases = root.findall(".//testcase")
    assert int(root.get("tests")) == len(cases) == len(found.checks) + 1  # + the skipped stage
    assert int(root.get("failures")) == len(root.findall(".//failure")) == 1
    assert int(root.get("skipped")) == 1
    failure = root.find(".//testsuite[@name='model']/testcase/failure")
    assert failure is not None and "baseline_champion:roc_auc said <so>" in failure.get("message")
    warned = root.find(".//testsuite[@name='data']/testcase[@name='drift:age']/system-out")
    assert warned is not None and warned.text.startswith("warning:")
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))


def test_gitlab_metrics_are_name_value_lines() -> None:
    text = render_gitlab_metrics(result(failing=True))
    lines = dict(line.split(" ") for line in text.splitlines())
    assert lines["conveyor_ci_passed"] == "0"
    assert lines["conveyor_metric_roc_auc"] == "0.75"
    assert float(lines["conveyor_metric_delta_roc_auc"]) == pytest.approx(-0.05)
    assert lines["conveyor_model_size_bytes_candidate"] == "1500"


def test_the_ci_section_of_conveyor_yaml() -> None:
    cfg = parse_config(
        "name: p\nci: {sample: {fraction: 0.1}, base: develop, tests: [tests/unit]}\n"
    )
    assert cfg.ci.sample.fraction == 0.1 and cfg.ci.base == "develop"
    assert parse_config("name: p\n").ci.serve.enabled is True
    with pytest.raises(ConfigError, match="give rows or fraction, not both"):
        parse_config("name: p\nci: {sample: {rows: 10, fraction: 0.5}}\n")
    with pytest.raises(ConfigError, match=r"ci.sampel: unknown key") as err:
        parse_config("name: p\nci: {sampel: {rows: 10}}\n")
    assert "did you mean 'sample'" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="inside the project"):
        parse_config("name: p\nci: {tests: [../elsewhere]}\n")
