from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from html.parser import HTMLParser

from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.payloads import Rows, build_payload
from conveyor.loadtest.report import render_html, render_json, render_markdown, render_text
from conveyor.loadtest.run import LoadReport
from conveyor.loadtest.shape import LoadShape
from conveyor.loadtest.slo import Slo, evaluate, generator_check
from conveyor.loadtest.stats import Latency, Measurement

HOSTILE = '<script>alert("x")</script>|pipe'


def measurement(*, ok: int = 990, p99_ms: float = 12.0, failure: str = "timeout") -> Measurement:
    return Measurement(
        url="http://127.0.0.1:28601/invocations",
        mode="closed",
        connections=8,
        elapsed_s=1.0,
        requests=ok + 9 + 1,
        responses=ok + 9,
        ok=ok,
        latency=Latency(
            count=ok + 9, mean_ms=3.0, p50_ms=2.5, p90_ms=6.0, p99_ms=p99_ms, max_ms=40.0
        ),
        statuses={200: ok, 500: 9},
        failures={failure: 1},
    )


def report(*, slo: Slo | None = None, target: str = "credit-risk:3", **kw: object) -> LoadReport:
    m = measurement(**kw)  # type: ignore[arg-type]
    ceiling = measurement(ok=20_000)
    slo = slo or Slo(min_qps=500, max_p99_ms=25, max_error_rate=0.001)
    endpoint = Endpoint.parse(m.url)
    rows = Rows(columns=["age", HOSTILE], data=[[1, "a"], [2, "b"]], sources=(HOSTILE,))
    checks = evaluate(slo, m) + [c for c in [generator_check(m, ceiling)] if c]
    return LoadReport(
        target=target,
        url=m.url,
        shape=LoadShape(concurrency=8, duration_s=1, warmup_s=0.5),
        payload=build_payload(endpoint, rows),
        slo=slo,
        measurement=m,
        ceiling=ceiling,
        checks=checks,
        started_at=datetime(2026, 11, 26, 5, 40, tzinfo=UTC),
    )


def test_text_report_shows_the_figures_the_ceiling_and_the_verdict() -> None:
    text = render_text(report())
    assert "throughput  999 requests/s (990 successful/s)" in text
    assert "p50 2.50 ms, p90 6.00 ms, p99 12.0 ms, max 40.0 ms" in text
    assert "errors      1.00% (500: 9, timeout: 1)" in text
    assert "generator ceiling 20,009 requests/s" in text and "reached 5% of it" in text
    assert "FAIL  load.max_error_rate" in text
    assert text.rstrip().endswith("verdict: failed")


def test_without_an_slo_the_report_says_nothing_was_gated() -> None:
    found = report(slo=Slo())
    assert found.passed
    assert "nothing gated" in render_text(found)
    assert "nothing was gated" in render_markdown(found)


def test_markdown_puts_the_verdict_first_and_keeps_tables_intact() -> None:
    md = render_markdown(report(target=HOSTILE))
    first = md.splitlines()[0]
    assert first.startswith("### ❌ Load test failed:")
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\|pipe" in md
    for line in md.splitlines():
        if line.startswith("|"):
            # every row of the facts table has exactly two cells (escaped pipes do not count)
            cells = line.replace("\\|", "").strip("|").split("|")
            assert len(cells) in (2, 3, 6), line


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_every_outside_string_and_is_self_contained() -> None:
    page = render_html(report(target=HOSTILE, failure='<img src=x onerror="boom">'))
    parsed = _Collect()
    parsed.feed(page)
    # Only the page's own structure: no script, image, link or anything else from the strings.
    assert set(parsed.tags) <= {
        *("html", "head", "meta", "title", "style", "body", "h1", "h2", "p"),
        *("table", "thead", "tbody", "tr", "th", "td", "span"),
    }
    text = "".join(parsed.text)
    assert HOSTILE in text and '<img src=x onerror="boom">' in text


def test_milliseconds_keep_three_significant_digits() -> None:
    from conveyor.loadtest.report import ms

    assert [ms(v) for v in (0.3134, 2.5, 12.04, 450.4, 1520.0)] == [
        "0.313 ms",
        "2.50 ms",
        "12.0 ms",
        "450 ms",
        "1.52 s",
    ]
    assert ms(math.nan) == "n/a"


def test_json_report_schema() -> None:
    doc = json.loads(render_json(report()))
    assert doc["format"] == "conveyor.loadtest/1"
    assert doc["passed"] is False
    assert set(doc) >= {
        "target",
        "url",
        "shape",
        "payload",
        "slo",
        "result",
        "ceiling",
        "ceiling_share",
        "checks",
        "started_at",
    }
    result = doc["result"]
    assert set(result["latency"]) == {"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}
    assert result["statuses"] == {"200": 990, "500": 9}
    assert result["errors"] == {"500": 9, "timeout": 1}
    assert result["error_rate"] == 0.01
    assert doc["shape"]["mode"] == "closed"
    assert doc["payload"]["distinct_requests"] == 2
    check = next(c for c in doc["checks"] if c["name"] == "load.max_error_rate")
    assert check["kind"] == "serving" and check["passed"] is False and check["severity"] == "error"


def test_json_is_strict_when_no_response_arrived() -> None:
    text = render_json(report(p99_ms=math.nan))
    assert "NaN" not in text
    doc = json.loads(text)
    assert doc["result"]["latency"]["p99_ms"] is None
    p99 = next(c for c in doc["checks"] if c["name"] == "load.max_p99_ms")
    assert p99["metrics"]["p99_ms"] is None
