"""Run reports of real runs: the built-in data and model steps, read back from the stores."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from helpers import open_and_run, write_files

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step
from conveyor.steps import check_drift, evaluate_model, validate_data, validate_model


@step(outputs=("train", "test"))
def data(n: int = 800) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.4 * rng.normal(size=n) > 0).astype(int)
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "region": np.where(x[:, 1] > 0, "n", "s"),
                       "label": y})
    return df.iloc[: n // 2], df.iloc[n // 2 :]


@step
def current(test: pd.DataFrame, shift: float = 1.5) -> pd.DataFrame:
    out = test.copy()
    out["a"] = out["a"] + shift
    return out


@step
def train(train: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(train[["a", "b"]], train["label"])


@pipeline
def main(shift: float = 1.5, note: str = ""):
    tr, te = data()
    cur = current(te, shift=shift)
    validate_data(cur)
    check_drift(tr, cur)
    model = train(tr)
    evaluate_model(model, te)
    validate_model(model, te)
"""

SCHEMA = """
version: 1
columns:
  - {name: a, type: float}
  - {name: b, type: float, min: -2.0, max: 2.0, severity: {out_of_range: warning}}
  - {name: region, type: categorical, domain: [n, s]}
  - {name: label, type: integer, min: 0, max: 1}
"""

CONFIG = """
name: reports
pipelines:
  main: pipelines/main.py:main
checks:
  data:
    schema: schemas/data.yaml
  model:
    label: label
    slices: [region]
    thresholds: {roc_auc: "ROC_AUC"}
"""


def _project(factory, roc_auc: str = ">= 0.8") -> Path:
    root = factory({"pipelines/main.py": PIPELINE}, config=CONFIG.replace("ROC_AUC", roc_auc))
    write_files(root, {"schemas/data.yaml": SCHEMA})
    return root


def _report(root: Path, ref: str = "latest"):
    from conveyor.engine.project import open_project
    from conveyor.reports import collect_report

    with open_project(root, environ={}) as project:
        return collect_report(project.metadata, project.artifacts, ref)


class _Strict(HTMLParser):
    """Collects the SVG elements' source and checks that tags nest."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        self.stack.pop()


def test_html_report_of_a_run_shows_evaluation_gate_validation_and_drift(
    make_sqlite_project, monkeypatch
) -> None:
    root = _project(make_sqlite_project)
    outcome = open_and_run(root, params={"note": "<script>alert(1)</script>"})
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    from conveyor.cli.report_cmd import report

    monkeypatch.chdir(root)
    result = CliRunner().invoke(report, [outcome.run_id[:12]], obj={"project": root})
    assert result.exit_code == 0, result.output
    path = root / f"report-{outcome.run_id}.html"
    assert result.stdout.strip() == path.name
    page = path.read_text(encoding="utf-8")

    parser = _Strict()
    parser.feed(page)
    assert parser.stack == []
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # every chart is well-formed XML on its own
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")

    found = _report(root)
    evaluation = found.evaluations[0].evaluation
    roc_auc = evaluation.metrics["roc_auc"]
    assert roc_auc is not None and f"{roc_auc:.4g}" in page
    assert 'class="chart calibration-chart"' in page and 'class="diagonal"' in page
    assert 'class="chart interval-chart"' in page
    assert found.gates[0].blessed and "blessed" in page
    drifted = [f for d in found.drifts for f in d.features if f.drifted]
    assert [f.column for f in drifted] == ["a"]
    assert page.count('class="chart histogram-chart"') == 1
    assert "histogram of a, reference against current" in page
    assert found.validations and found.validations[0].anomalies  # b out of [-2, 2]
    assert 'id="validation"' in page and "out_of_range" in page


def test_markdown_summary_has_the_metrics_and_the_verdict(make_sqlite_project) -> None:
    root = _project(make_sqlite_project)
    outcome = open_and_run(root)
    assert outcome.status == "succeeded"
    from conveyor.cli.report_cmd import report

    result = CliRunner().invoke(report, ["latest", "--markdown"], obj={"project": root})
    assert result.exit_code == 0, result.output
    text = result.stdout
    roc_auc = _report(root).evaluations[0].evaluation.metrics["roc_auc"]
    assert roc_auc is not None
    assert re.search(rf"^\| roc\\_auc \| {re.escape(f'{roc_auc:.4g}')} \| \[", text, re.M)
    assert "**Model gate** (validate\\_model): **✅ blessed**" in text
    assert "**Drift** (check\\_drift)" in text and "| a | ks |" in text
    assert not list(root.glob("report-*.html"))  # Markdown goes to stdout only


def test_failed_gate_is_rebuilt_from_its_checks_with_every_reason(make_sqlite_project) -> None:
    root = _project(make_sqlite_project, roc_auc=">= 0.999")
    outcome = open_and_run(root)
    assert outcome.status == "failed"
    assert outcome.step("validate_model").status == "failed"
    found = _report(root)
    gate = found.gates[0]
    assert gate.from_checks and not gate.blessed
    assert any("roc_auc" in r and "0.999" in r for r in gate.reasons)
    from conveyor.reports import render_html, render_markdown

    page = render_html(found)
    assert "not blessed" in page and "validate_model failed" in page
    assert "GateFailedError" in page or "gate &#x27;model&#x27; failed" in page
    assert "❌ not blessed" in render_markdown(found)


def test_unknown_run_is_a_usage_error_with_a_hint(make_sqlite_project) -> None:
    root = _project(make_sqlite_project)
    open_and_run(root)
    from conveyor.cli.report_cmd import report

    result = CliRunner().invoke(report, ["nosuchrun"], obj={"project": root})
    assert result.exit_code != 0
    assert result.exception is not None
    assert "no run 'nosuchrun'" in str(result.exception)
    assert "runs list" in str(result.exception)


def test_runs_report_command_writes_html_and_prints_markdown(make_sqlite_project) -> None:
    from helpers import conveyor

    root = _project(make_sqlite_project)
    conveyor("run", cwd=root)
    proc = conveyor("runs", "report", "latest", cwd=root)
    assert proc.returncode == 0, proc.stderr
    path = root / proc.stdout.strip().splitlines()[-1]
    assert path.name.startswith("report-") and path.suffix == ".html"
    page = path.read_text()
    assert "<svg" in page and "<script" not in page.lower().replace("&lt;script", "")
    md = conveyor("runs", "report", "latest", "--markdown", cwd=root)
    assert md.returncode == 0 and "**Model gate**" in md.stdout
