"""The CI result as JUnit XML (one ``testsuite`` per stage, one ``testcase`` per check) and as
a GitLab metrics report (OpenMetrics text: one ``name value`` line per number).

A blocking failure is a ``<failure>``; a failed warning is a passing test case whose
``<system-out>`` says so, so CI systems count only what blocks.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from conveyor.ci.result import CIResult, StageStatus
from conveyor.core.checks import Severity

_NAME = re.compile(r"[^a-zA-Z0-9_]+")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _text(value: str) -> str:
    return _XML_BAD.sub("?", value)


def render_junit(result: CIResult) -> str:
    root = ET.Element("testsuites", name="conveyor ci")
    total = failures = skipped = 0
    for stage in result.stages:
        suite = ET.SubElement(root, "testsuite", name=stage.name)
        stage_failures = stage_skipped = 0
        for check in stage.checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conveyor.{stage.name}",
                name=_text(check.name),
                time=f"{check.metrics.get('time_s', check.metrics.get('duration_s', 0.0)):.3f}",
            )
            if not check.passed and check.severity == Severity.ERROR:
                stage_failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=_text(
                        check.message.splitlines()[0][:500] if check.message else "failed"
                    ),
                )
                failure.text = _text(check.message)
            elif not check.passed:
                ET.SubElement(case, "system-out").text = _text(f"{check.severity}: {check.message}")
        if stage.status == StageStatus.SKIPPED:
            case = ET.SubElement(
                suite, "testcase", classname=f"conveyor.{stage.name}", name=stage.name
            )
            ET.SubElement(case, "skipped", message=_text("; ".join(stage.notes)))
            stage_skipped = 1
        count = len(stage.checks) + stage_skipped
        suite.set("tests", str(count))
        suite.set("failures", str(stage_failures))
        suite.set("errors", "0")
        suite.set("skipped", str(stage_skipped))
        suite.set("time", f"{stage.duration_s:.3f}")
        total += count
        failures += stage_failures
        skipped += stage_skipped
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    root.set("time", f"{result.elapsed_s:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def metric_name(*parts: str) -> str:
    return _NAME.sub("_", "_".join(parts)).strip("_").lower()


def render_gitlab_metrics(result: CIResult) -> str:
    """GitLab's metrics report: ``name value`` lines; GitLab shows changes against the
    target branch's report in the merge request."""
    lines = [f"conveyor_ci_passed {int(result.passed)}"]
    lines.append(f"conveyor_ci_blocking_failures {len(result.blocking)}")
    for stage in result.stages:
        lines.append(
            f"{metric_name('conveyor_ci_stage_seconds', stage.name)} {stage.duration_s:.3f}"
        )
    c = result.comparison
    for m in c.metrics:
        if m.candidate is not None and math.isfinite(m.candidate):
            lines.append(f"{metric_name('conveyor_metric', m.name)} {m.candidate:.6g}")
        if m.delta is not None and math.isfinite(m.delta):
            lines.append(f"{metric_name('conveyor_metric_delta', m.name)} {m.delta:.6g}")
    for group, values in (
        ("model_size_bytes", c.model_size),
        ("predict_latency_ms", c.predict_latency_ms),
        ("serving", c.serving),
    ):
        for key, value in values.items():
            if math.isfinite(value):
                lines.append(f"{metric_name('conveyor', group, key)} {value:.6g}")
    return "\n".join(lines) + "\n"
