"""Run reports: one self-contained HTML page and a Markdown summary per run.

    from conveyor.reports import collect_report, render_html, render_markdown

    with open_project(root) as project:
        report = collect_report(project.metadata, project.artifacts, "latest")
    Path("report.html").write_text(render_html(report), encoding="utf-8")

``collect_report`` reads the stores once into a :class:`RunReport`; the renderers are pure
functions of it.
"""

from __future__ import annotations

from conveyor.reports.collect import MAX_ARTIFACT_BYTES, collect_report
from conveyor.reports.html import render_html
from conveyor.reports.markdown import render_markdown
from conveyor.reports.sections import RunReport

__all__ = ["MAX_ARTIFACT_BYTES", "RunReport", "collect_report", "render_html", "render_markdown"]
