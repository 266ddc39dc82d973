"""``conveyor loadtest TARGET``: load a prediction service, report, and gate on an SLO."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import json_option, open_project_from, result, status, write_atomically
from conveyor.errors import EXIT_FAILED


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``10s``, ``500ms``, ``2m`` or a bare number of seconds."""
    from conveyor.errors import UsageError
    from conveyor.loadtest.shape import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value, what=f"--{param.name}")
    except UsageError as exc:
        raise click.BadParameter(exc.message) from None


@click.command("loadtest")
@click.argument("target", metavar="TARGET")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 10_000),
    help="Closed loop: connections, each with one request in flight (default 8). Open loop: "
    "the most requests in flight (default 64).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Open loop: send this many requests per second, whatever the answers do.",
)
@click.option(
    "-d",
    "--duration",
    metavar="DURATION",
    callback=_seconds,
    default="10s",
    show_default=True,
    help="How long to measure, after the warm-up.",
)
@click.option(
    "--warmup",
    metavar="DURATION",
    callback=_seconds,
    default="2s",
    show_default=True,
    help="Load sent first and left out of every figure.",
)
@click.option(
    "-n",
    "--max-requests",
    type=click.IntRange(min=1),
    help="End the measurement after this many requests, if the duration has not ended it.",
)
@click.option(
    "--timeout",
    metavar="DURATION",
    callback=_seconds,
    default="10s",
    show_default=True,
    help="A request without a complete response after this long fails as 'timeout'.",
)
@click.option(
    "--rows-per-request",
    type=click.IntRange(1, 100_000),
    default=1,
    show_default=True,
    help="Input rows in each request.",
)
@click.option(
    "--inputs",
    "inputs_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Rows to send: a JSON file in the dataframe_split form, a CSV or a Parquet file.",
)
@click.option(
    "--package",
    "package_ref",
    metavar="NAME:VERSION",
    help="With a URL target: send the golden and evaluation rows of this model version.",
)
@click.option(
    "--protocol",
    type=click.Choice(["mlflow", "v2"]),
    default="mlflow",
    show_default=True,
    help="With a NAME:VERSION target: POST /invocations (dataframe_split) or the Open "
    "Inference Protocol's /v2/models/NAME/infer. A URL target's path decides by itself.",
)
@click.option("--min-qps", type=click.FloatRange(min=0), help="SLO: at least this many 2xx/s.")
@click.option(
    "--max-p99-ms", type=click.FloatRange(min=0, min_open=True), help="SLO: p99 latency bound."
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    help="SLO: at most this share of requests without a 2xx response (e.g. 0.001).",
)
@click.option(
    "--ceiling",
    "ceiling_s",
    metavar="DURATION",
    callback=_seconds,
    default="2s",
    show_default=True,
    help="Measure the generator's own ceiling against a no-op endpoint for this long first "
    "(0 to skip).",
)
@click.option("--markdown", is_flag=True, help="Print a Markdown report (for a PR comment).")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report to FILE ('-' for stdout).",
)
@json_option
@click.pass_context
def loadtest(
    ctx: click.Context,
    target: str,
    concurrency: int | None,
    rate: float | None,
    duration: float,
    warmup: float,
    max_requests: int | None,
    timeout: float,
    rows_per_request: int,
    inputs_path: Path | None,
    package_ref: str | None,
    protocol: str,
    min_qps: float | None,
    max_p99_ms: float | None,
    max_error_rate: float | None,
    ceiling_s: float,
    markdown: bool,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """Load-test TARGET and gate on an SLO: exit 1 when a bound is not met.

    TARGET is the URL of a running service (http://host:port/invocations, or
    .../v2/models/NAME/infer) or a registered model version NAME:VERSION, whose package
    this command serves itself on a free port for the test. Requests carry the package's
    golden and evaluation rows (or --inputs). Without --rate the load is a closed loop of
    --concurrency connections; with it, an open loop at that rate.
    """
    from conveyor.loadtest import report as render
    from conveyor.loadtest.run import run_loadtest
    from conveyor.loadtest.shape import DEFAULT_CONCURRENCY, DEFAULT_OPEN_CONNECTIONS, LoadShape
    from conveyor.loadtest.slo import Slo
    from conveyor.loadtest.target import open_target

    if as_json + markdown + (str(html_path) == "-") > 1:
        raise click.UsageError(
            "only one report can go to stdout: choose --json, --markdown or --html -"
        )
    shape = LoadShape(
        concurrency=concurrency
        or (DEFAULT_CONCURRENCY if rate is None else DEFAULT_OPEN_CONNECTIONS),
        rate=rate,
        duration_s=duration,
        warmup_s=warmup,
        max_requests=max_requests,
        timeout_s=timeout,
    )
    slo = Slo(min_qps=min_qps, max_p99_ms=max_p99_ms, max_error_rate=max_error_rate)
    with open_target(
        target,
        project=lambda: open_project_from(ctx),
        inputs=inputs_path,
        package_ref=package_ref,
        protocol=protocol,
        rows_per_request=rows_per_request,
        progress=status,
    ) as (endpoint, payload):
        found = run_loadtest(
            endpoint,
            payload,
            shape,
            target=target,
            slo=slo,
            ceiling_s=ceiling_s or None,
            progress=status,
        )
    if html_path is not None:
        page = render.render_html(found)
        if str(html_path) == "-":
            click.echo(page, nl=False)
        else:
            _write(html_path, page)
            status(f"wrote the HTML report to {html_path}")
    if as_json:
        click.echo(render.render_json(found), nl=False)
    elif markdown:
        click.echo(render.render_markdown(found), nl=False)
    elif html_path is None or str(html_path) != "-":
        result(render.render_text(found).rstrip("\n"))
    share = found.ceiling_share
    if share is not None and share > 0.5:
        status(
            f"warning: the target reached {share:.0%} of the generator's ceiling; the "
            "generator may have been the bottleneck",
            fg="yellow",
        )
    if not found.passed:
        status("load test failed its SLO", fg="red")
        ctx.exit(EXIT_FAILED)


def _write(path: Path, text: str) -> None:
    write_atomically(path, text, "--html FILE")
