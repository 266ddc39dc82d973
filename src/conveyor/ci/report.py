"""The CI result as Markdown, for a pull-request comment and a job summary: the verdict line
first, then what blocks, the numbers against the baseline, and the time each stage took.

Every string that comes from a run or a test is escaped (:func:`conveyor.reports.markdown.md`)
so it cannot become markup. :func:`truncate` cuts a report to a size cap at a line boundary,
with a note, so a host's limit never rejects it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from conveyor.ci.result import CIResult, MetricDelta, Stage, StageStatus
from conveyor.core.checks import CheckResult, Severity
from conveyor.reports.markdown import md

MARKER = "<!-- conveyor-ci -->"
MAX_ROWS = 30
PASS, FAIL, WARN, SKIP = "✅", "❌", "⚠️", "⏭️"
UP, DOWN, SAME = "▲", "▼", "="


def render_markdown(result: CIResult) -> str:
    lines = [MARKER, _verdict(result), "", *_context(result), ""]
    lines += _blocking(result)
    lines += _metrics(result.comparison.metrics, found=result.baseline.found)
    lines += _params(result)
    lines += _data(result)
    lines += _serving(result)
    lines += _warnings(result)
    lines += _stages(result.stages)
    return "\n".join(lines).rstrip() + "\n"


def _verdict(result: CIResult) -> str:
    checks = result.checks
    warnings = [c for c in checks if not c.passed and c.severity == Severity.WARNING]
    if result.passed:
        tail = f", {len(warnings)} warnings" if warnings else ""
        return f"## {PASS} Conveyor CI passed: {len(checks)} checks, none blocking{tail}"
    blocking = result.blocking
    names = ", ".join(f"{s.name}: {md(c.name)}" for s, c in blocking[:3])
    more = f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
    return f"## {FAIL} Conveyor CI failed: {len(blocking)} blocking ({names}{more})"


def _context(result: CIResult) -> list[str]:
    commit = (result.commit or "no commit")[:10] + (
        " (with uncommitted changes)" if result.dirty else ""
    )
    sample = ", ".join(f"{md(k)}={md(v)}" for k, v in sorted(result.sample.items())) or "full"
    run = f" · run {code(result.run_id)}" if result.run_id else ""
    return [
        f"project **{md(result.project)}** · commit {code(commit)} · pipeline "
        f"**{md(result.pipeline or '-')}**{run} · sample: {sample} · took {result.elapsed_s:.1f} s",
        "",
        f"**Baseline**: {md(result.baseline.describe())}",
    ]


def _blocking(result: CIResult) -> list[str]:
    if result.passed:
        return []
    lines = ["### Why it failed", ""]
    for stage, c in result.blocking[:MAX_ROWS]:
        lines.append(f"- {FAIL} **{md(stage.title)}** · {code(c.name)}: {md(_first(c.message))}")
    if len(result.blocking) > MAX_ROWS:
        lines.append(f"- … and {len(result.blocking) - MAX_ROWS} more")
    return [*lines, ""]


def code(text: object) -> str:
    """Text as a Markdown code span: shown as written (no escapes inside one)."""
    flat = " ".join(str(text).split()).replace("`", "'")
    return f"`{flat}`"


def _first(message: str, limit: int = 400) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def _arrow(m: MetricDelta) -> str:
    d = m.delta
    if d is None:
        return "-"
    if d == 0:
        return f"{SAME} 0"
    arrow = UP if d > 0 else DOWN
    if m.higher_is_better is None:
        sense = ""
    else:
        sense = " better" if (d > 0) == m.higher_is_better else " worse"
    return f"{arrow} {d:+.4g}{sense}"


def _metrics(metrics: Sequence[MetricDelta], *, found: bool) -> list[str]:
    if not metrics:
        return []
    level = next((m.confidence for m in metrics if m.confidence), None)
    head = f"{level:.0%} interval (candidate)" if level else "interval (candidate)"
    lines = [
        "### Metrics" + (" against the baseline" if found else ""),
        "",
        f"| metric | baseline | candidate | change | {head} |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for m in metrics[:MAX_ROWS]:
        interval = f"[{num(m.low)}, {num(m.high)}]" if m.low is not None else "-"
        lines.append(
            f"| {md(m.name)} | {num(m.baseline)} | {num(m.candidate)} | {_arrow(m)} | {interval} |"
        )
    return [*lines, ""]


def _params(result: CIResult) -> list[str]:
    changes = result.comparison.params
    if not changes:
        return []
    lines = [
        "### Params that differ",
        "",
        "| param | baseline | candidate |",
        "| --- | --- | --- |",
    ]
    for p in changes[:MAX_ROWS]:
        lines.append(f"| {md(p.name)} | {md(_value(p.baseline))} | {md(_value(p.candidate))} |")
    return [*lines, ""]


def _value(value: object) -> str:
    return "(unset)" if value is None else str(value)


def _data(result: CIResult) -> list[str]:
    c = result.comparison
    if not c.anomalies and not c.drifted:
        return []
    lines = ["### Data", ""]
    if c.anomalies:
        lines.append(f"Anomalies against the schema ({len(c.anomalies)}):")
        lines += [f"- {md(a)}" for a in c.anomalies[:MAX_ROWS]]
        lines.append("")
    if c.drifted:
        names = ", ".join(code(n) for n in c.drifted[:MAX_ROWS])
        lines.append(f"Features drifted from the baseline's data ({len(c.drifted)}): {names}")
        lines.append("")
    return lines


def _change(baseline: float | None, candidate: float | None) -> str:
    if baseline is None or candidate is None:
        return "-"
    if baseline == 0:
        return f"{candidate - baseline:+.4g}"
    share = (candidate - baseline) / baseline
    return f"{UP if share > 0 else DOWN if share < 0 else SAME} {share:+.1%}"


def _size(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"  # pragma: no cover


def _serving(result: CIResult) -> list[str]:
    c = result.comparison
    rows = []
    if c.model_size:
        b, m = c.model_size.get("baseline"), c.model_size.get("candidate")
        rows.append(f"| model size | {_size(b)} | {_size(m)} | {_change(b, m)} |")
    if c.predict_latency_ms:
        b, m = c.predict_latency_ms.get("baseline"), c.predict_latency_ms.get("candidate")
        rows.append(
            f"| predict latency, 1 row in process (ms) | {num(b)} | {num(m)} | {_change(b, m)} |"
        )
    lines: list[str] = []
    if rows:
        lines += [
            "### Cost of serving",
            "",
            "| | baseline | candidate | change |",
            "| --- | ---: | ---: | --- |",
            *rows,
            "",
        ]
    if c.serving:
        s = c.serving
        if not lines:
            lines += ["### Cost of serving", ""]
        lines.append(
            f"Load test of the candidate's package: {num(s.get('qps'))} requests/s, "
            f"p50 {num(s.get('p50_ms'))} ms, p99 {num(s.get('p99_ms'))} ms, "
            f"errors {s.get('error_rate', 0.0):.2%}"
        )
        lines.append("")
    return lines


def _warnings(result: CIResult) -> list[str]:
    found: list[tuple[Stage, CheckResult]] = [
        (s, c)
        for s in result.stages
        for c in s.checks
        if not c.passed and c.severity != Severity.ERROR and c.kind != "pipeline"
    ]
    if not found:
        return []
    lines = [f"<details><summary>{WARN} {len(found)} warnings and notes</summary>", ""]
    for stage, c in found[:MAX_ROWS]:
        lines.append(f"- **{md(stage.title)}** · {code(c.name)}: {md(_first(c.message))}")
    if len(found) > MAX_ROWS:
        lines.append(f"- … and {len(found) - MAX_ROWS} more")
    return [*lines, "", "</details>", ""]


def _stages(stages: Sequence[Stage]) -> list[str]:
    lines = ["### Stages", "", "| stage | result | checks | time |", "| --- | --- | ---: | ---: |"]
    for s in stages:
        mark = {StageStatus.PASSED: PASS, StageStatus.FAILED: FAIL}.get(s.status, SKIP)
        failed = sum(not c.passed for c in s.checks)
        counts = f"{len(s.checks) - failed} passed, {failed} failed" if s.checks else "-"
        lines.append(f"| {md(s.title)} | {mark} {s.status} | {counts} | {s.duration_s:.1f} s |")
    notes = [(s, n) for s in stages for n in s.notes]
    if notes:
        lines.append("")
        lines += [f"- {md(s.title)}: {md(n)}" for s, n in notes]
    return [*lines, ""]


def truncate(text: str, *, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """``text`` cut at a line boundary to fit both caps, with a note saying it was cut."""

    def fits(candidate: str) -> bool:
        if max_chars is not None and len(candidate) > max_chars:
            return False
        return max_bytes is None or len(candidate.encode("utf-8")) <= max_bytes

    if fits(text):
        return text
    note = (
        "\n\n---\n*The report was cut to fit this page's size limit; the full report is in "
        "the job's artifacts (`.conveyor/ci/report.md`).*\n"
    )
    budget = min(
        max_chars if max_chars is not None else len(text),
        max_bytes if max_bytes is not None else len(text),
    ) - len(note.encode("utf-8"))
    cut = text[: max(budget, 0)]
    while cut and not fits(cut + note):  # multi-byte characters: shrink until it fits
        cut = cut[: len(cut) - max(1, len(cut) // 100)]
    cut = cut.rsplit("\n", 1)[0] if "\n" in cut else cut
    return cut + note
