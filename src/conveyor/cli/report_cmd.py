"""``conveyor runs report RUN``: a self-contained HTML report, or a Markdown summary."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import open_project_from, result, status, write_atomically


@click.command("report")
@click.argument("run_ref", metavar="RUN")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE ('-' for stdout). Default: report-RUN.html in the current directory; "
    "with --markdown, stdout.",
)
@click.option(
    "--markdown",
    is_flag=True,
    help="A Markdown summary (for a pull-request comment) instead of the HTML page.",
)
@click.pass_context
def report(ctx: click.Context, run_ref: str, output: Path | None, markdown: bool) -> None:
    """Write a report of a run: steps, metrics, checks, model evaluation and gate, data
    validation and drift, with charts. The HTML is one file that opens offline.

    RUN is a run id, a unique prefix of one, 'latest' or 'latest~N'.
    """
    from conveyor.engine.lease import reap
    from conveyor.reports import collect_report, render_html, render_markdown

    project = open_project_from(ctx)
    reap(project.metadata, ttl_s=project.config.heartbeat_seconds * 6)
    found = collect_report(project.metadata, project.artifacts, run_ref)
    text = render_markdown(found) if markdown else render_html(found)
    if output is None and not markdown:
        output = Path(f"report-{found.run.id}.html")
    if output is None or str(output) == "-":
        click.echo(text, nl=False)
        return
    _write(output, text)
    status(f"wrote the report of run {found.run.id} to {output}")
    result(str(output))


def _write(path: Path, text: str) -> None:
    write_atomically(path, text, "-o FILE")
