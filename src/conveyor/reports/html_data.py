"""HTML of the data sections: validation anomalies, and drift per feature with a histogram
of reference against current values for every feature that drifted."""

from __future__ import annotations

from conveyor.checks.drift import STATISTIC
from conveyor.reports.markup import article, badge, esc, figure, para, section, table
from conveyor.reports.sections import DriftSection, FeatureDrift, ValidationSection
from conveyor.reports.svg import histogram_chart
from conveyor.reports.text import num, value

SEVERITY_TONE = {"error": "fail", "warning": "warn", "info": "info"}


def validation_section(validations: tuple[ValidationSection, ...]) -> str:
    if not validations:
        return ""
    return section("validation", "Data validation", [_validation(v) for v in validations])


def _validation(v: ValidationSection) -> str:
    tone = "fail" if v.blocking else "warn" if v.anomalies else "pass"
    verdict = "blocking" if v.blocking else "anomalies" if v.anomalies else "clean"
    body = [para(esc(v.summary))]
    if v.anomalies:
        rows = [
            [
                badge(a.severity, SEVERITY_TONE.get(a.severity, "info")),
                esc(a.column),
                esc(a.kind),
                esc(f"{a.count:,}"),
                esc(a.message),
                esc(", ".join(value(x) for x in a.examples)),
            ]
            for a in v.anomalies
        ]
        head = ["severity", "column", "anomaly", "count", "details", "examples"]
        body.append(table(head, rows, right=[3]))
    return article(f"{esc(v.step)} {badge(verdict, tone)}", body)


def drift_section(drifts: tuple[DriftSection, ...]) -> str:
    if not drifts:
        return ""
    return section("drift", "Drift", [_drift(d) for d in drifts])


def statistic(f: FeatureDrift) -> str:
    if f.statistic is None:
        return "-"
    return f"{STATISTIC.get(f.method, f.method)} = {num(f.statistic)}"


def _verdict(f: FeatureDrift) -> str:
    tone = "fail" if f.drifted else "pass" if f.checked else "info"
    return badge(f.verdict, tone)


def _drift(d: DriftSection) -> str:
    verdict = badge(
        "dataset drift" if d.drifted else "no dataset drift", "fail" if d.drifted else "pass"
    )
    rows_text = ""
    if d.reference_rows is not None and d.current_rows is not None:
        rows_text = f" Reference {d.reference_rows:,} rows, current {d.current_rows:,} rows."
    body = [para(esc(d.summary + "." + rows_text))]
    ordered = sorted(d.features, key=lambda f: (not f.drifted, not f.checked))
    rows = [
        [
            esc(f.column),
            esc(f.kind),
            esc(f.method or "-"),
            esc(statistic(f)),
            esc(num(f.p_value) if f.p_value is not None else "-"),
            esc(num(f.threshold) if f.threshold is not None else "-"),
            _verdict(f),
            esc(f.note),
        ]
        for f in ordered
    ]
    head = ["feature", "kind", "method", "statistic", "p-value", "threshold", "verdict", "note"]
    body.append(table(head, rows, right=[4, 5]))
    charts = [_histogram(f) for f in ordered if f.drifted and f.histogram is not None]
    if charts:
        body += ["<h4>Drifted features: reference against current</h4>"]
        body.append(f'<div class="charts">{"".join(charts)}</div>')
    return article(f"{esc(d.step)} {verdict}", body)


def _histogram(f: FeatureDrift) -> str:
    assert f.histogram is not None
    caption = f"{f.column}: {statistic(f)}"
    if f.p_value is not None:
        caption += f", p = {num(f.p_value)}"
    if f.threshold is not None:
        caption += f" (threshold {num(f.threshold)})"
    label = f"histogram of {f.column}, reference against current"
    return figure(histogram_chart(f.histogram, label), esc(caption))
