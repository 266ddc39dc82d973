"""A load test's report as plain text, Markdown, one self-contained HTML page, or JSON.

Every string that came from outside (the target, URLs, error kinds, check messages) is
escaped where it enters the markup, so a hostile name never becomes HTML or breaks a table.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from conveyor.core.checks import CheckResult, Severity
from conveyor.loadtest.run import LoadReport
from conveyor.loadtest.stats import Measurement


def ms(x: float) -> str:
    """Milliseconds with three significant digits (seconds from 1000 ms on)."""
    if not math.isfinite(x):
        return "n/a"
    if x >= 1000:
        return f"{x / 1000:,.2f} s"
    decimals = 3 if x < 1 else 2 if x < 10 else 1 if x < 100 else 0
    return f"{x:.{decimals}f} ms"


def rate(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def percent(x: float) -> str:
    return f"{x:.2%}" if x else "0%"


def verdict(report: LoadReport) -> str:
    return "passed" if report.passed else "failed"


def outcome(c: CheckResult) -> str:
    if c.passed:
        return "pass"
    return "FAIL" if c.severity == Severity.ERROR else "warn"


def error_line(m: Measurement) -> str:
    causes = ", ".join(f"{k}: {n:,}" for k, n in m.errors.items())
    return percent(m.error_rate) + (f" ({causes})" if causes else "")


def ceiling_line(report: LoadReport) -> str | None:
    share = report.ceiling_share
    if report.ceiling is None or share is None:
        return None
    return (
        f"generator ceiling {rate(report.ceiling.qps)} requests/s "
        f"({report.ceiling.connections} connections, no-op endpoint); "
        f"the target reached {share:.0%} of it"
    )


def facts(report: LoadReport) -> list[tuple[str, str]]:
    """The report's findings as (label, value) pairs, shared by every format."""
    m = report.measurement
    p = report.payload
    rows = [
        (
            "target",
            report.target if report.target == report.url else f"{report.target} at {report.url}",
        ),
        ("load", report.shape.describe()),
        (
            "payload",
            f"{p.rows_per_request} row(s) per request, {len(p.requests):,} distinct requests "
            f"({p.protocol}, {p.mean_bytes:,.0f} bytes on average) from {', '.join(p.sources)}",
        ),
        ("requests", f"{m.requests:,} in {m.elapsed_s:.2f} s"),
        ("throughput", f"{rate(m.qps)} requests/s ({rate(m.ok_qps)} successful/s)"),
        (
            "latency",
            f"p50 {ms(m.latency.p50_ms)}, p90 {ms(m.latency.p90_ms)}, "
            f"p99 {ms(m.latency.p99_ms)}, max {ms(m.latency.max_ms)}",
        ),
        ("errors", error_line(m)),
    ]
    if m.schedule is not None:
        s = m.schedule
        rows.append(
            (
                "schedule",
                f"{s.rate:g} requests/s: {s.scheduled:,} scheduled, {s.late:,} late "
                f"(> {s.late_after_ms:g} ms), {s.dropped:,} dropped, "
                f"worst send lag {ms(s.max_send_lag_ms)}",
            )
        )
    line = ceiling_line(report)
    if line:
        rows.append(("headroom", line))
    return rows


# -- text ---------------------------------------------------------------------------------------


def render_text(report: LoadReport) -> str:
    width = max(len(label) for label, _ in facts(report))
    lines = [f"{label:<{width}}  {value}" for label, value in facts(report)]
    if report.checks:
        lines.append("checks")
        lines += [f"  {outcome(c):<4}  {c.name}: {c.message}" for c in report.checks]
    if report.slo.empty:
        lines.append("no SLO given (--min-qps, --max-p99-ms, --max-error-rate): nothing gated")
    lines.append(f"verdict: {verdict(report)}")
    return "\n".join(lines) + "\n"


# -- Markdown -----------------------------------------------------------------------------------


def md(text: object) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no HTML."""
    return (
        escape(str(text), quote=False)
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("`", "\\`")
    )


def render_markdown(report: LoadReport) -> str:
    m = report.measurement
    icon = "✅" if report.passed else "❌"
    out = [
        f"### {icon} Load test {verdict(report)}: {md(report.target)}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {md(label)} | {md(value)} |" for label, value in facts(report)),
        "",
        "| QPS | p50 | p90 | p99 | max | error rate |",
        "|--:|--:|--:|--:|--:|--:|",
        f"| {rate(m.qps)} | {ms(m.latency.p50_ms)} | {ms(m.latency.p90_ms)} "
        f"| {ms(m.latency.p99_ms)} | {ms(m.latency.max_ms)} | {percent(m.error_rate)} |",
    ]
    if report.checks:
        out += ["", "| check | result | |", "|---|---|---|"]
        out += [f"| {md(c.name)} | {outcome(c)} | {md(c.message)} |" for c in report.checks]
    if report.slo.empty:
        out += ["", "_No SLO was given, so nothing was gated._"]
    return "\n".join(out) + "\n"


# -- HTML ---------------------------------------------------------------------------------------

CSS = """
:root{color-scheme:light dark;--fg:#1d232b;--bg:#fff;--muted:#5d6b7a;--line:#d8dee6;
--head:#f2f4f7;--pass:#1b7f3b;--fail:#c0392b;--warn:#a86a12}
@media (prefers-color-scheme:dark){:root{--fg:#e3e8ee;--bg:#14181d;--muted:#9aa7b4;
--line:#323a44;--head:#1d232a}}
body{font:14px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg);
max-width:1000px;margin:24px auto;padding:0 20px}
h1{font-size:21px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid var(--line)}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--head)}.n{text-align:right}
.badge{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;font-weight:600;
color:#fff}.pass{background:var(--pass)}.fail{background:var(--fail)}.warn{background:var(--warn)}
.bar{display:inline-block;height:10px;background:var(--muted);vertical-align:middle}
"""
TONE = {"pass": "pass", "FAIL": "fail", "warn": "warn"}


def esc(text: object) -> str:
    return escape(str(text))


def _badge(label: str) -> str:
    return f'<span class="badge {TONE.get(label, "warn")}">{esc(label.lower())}</span>'


def _table(head: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()

    def cell(tag: str, i: int, html: str) -> str:
        return f'<{tag} class="n">{html}</{tag}>' if i in right else f"<{tag}>{html}</{tag}>"

    thead = "".join(cell("th", i, esc(h)) for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    head_row = f"<thead><tr>{thead}</tr></thead>" if any(head) else ""
    return f"<table>{head_row}<tbody>{body}</tbody></table>"


def _latency_table(report: LoadReport) -> str:
    m = report.measurement
    points = [
        ("p50", m.latency.p50_ms),
        ("p90", m.latency.p90_ms),
        ("p99", m.latency.p99_ms),
        ("max", m.latency.max_ms),
    ]
    top = max((v for _, v in points if math.isfinite(v)), default=0.0)
    rows = []
    for label, value in points:
        width = int(240 * value / top) if top > 0 and math.isfinite(value) else 0
        rows.append(
            [esc(label), esc(ms(value)), f'<span class="bar" style="width:{width}px"></span>']
        )
    return _table(["percentile", "latency", ""], rows, right={1})


def render_html(report: LoadReport) -> str:
    """One page with inline CSS and no script, so it opens offline as a CI artifact."""
    m = report.measurement
    summary = _table([], [[esc(k), esc(v)] for k, v in facts(report)])
    statuses = _table(
        ["status or failure", "requests"],
        [[esc(s), esc(f"{n:,}")] for s, n in m.statuses.items()]
        + [[esc(k), esc(f"{n:,}")] for k, n in m.failures.items()],
        right={1},
    )
    checks = (
        _table(
            ["check", "result", "message"],
            [[esc(c.name), _badge(outcome(c)), esc(c.message)] for c in report.checks],
        )
        if report.checks
        else "<p>No SLO was given, so nothing was gated.</p>"
    )
    title = f"Load test {verdict(report)}: {report.target}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_badge('pass' if report.passed else 'FAIL')} {esc(title)}</h1>"
        f"<p>{esc(report.started_at.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>"
        f"{summary}<h2>Latency</h2>{_latency_table(report)}"
        f"<h2>Responses</h2>{statuses}<h2>Checks</h2>{checks}"
        "</body></html>\n"
    )


# -- JSON ---------------------------------------------------------------------------------------


def render_json(report: LoadReport) -> str:
    """Strict JSON (a NaN, e.g. the p99 of a test with no response, becomes null)."""
    return json.dumps(_finite(report.to_json()), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
