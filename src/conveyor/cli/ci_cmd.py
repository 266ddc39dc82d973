"""``conveyor ci``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from conveyor.cli.output import (
    emit_json,
    json_option,
    open_project_from,
    result,
    status,
    write_atomically,
)
from conveyor.errors import EXIT_FAILED

REPORT_FILES = {
    "markdown": "report.md",
    "junit": "junit.xml",
    "gitlab_metrics": "metrics.txt",
    "json": "result.json",
}


@click.command("ci")
@click.option(
    "--base",
    metavar="REF",
    help="Compare with the run at the merge-base of HEAD and REF (default: ci.base in "
    "conveyor.yaml, else the repository's default branch).",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first stage with a blocking failure.")
@click.option(
    "--no-compute-baseline",
    is_flag=True,
    help="When the metadata store has no run at the merge-base, compare with nothing instead "
    "of running the pipeline there in a temporary git worktree.",
)
@click.option("--no-serve", is_flag=True, help="Skip the smoke test and load test (stage 5).")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write report.md, junit.xml, metrics.txt (GitLab metrics) and result.json "
    "(default: .conveyor/ci in the project).",
)
@click.option(
    "--comment/--no-comment",
    default=None,
    help="Post the report as a sticky pull-request comment (GitHub) or merge-request note "
    "(GitLab). Default: when a token and a pull request are known.",
)
@click.option(
    "--pr",
    "pr_number",
    type=click.IntRange(min=1),
    help="The pull request (GitHub) or merge request IID (GitLab) to comment on, when the CI "
    "environment does not say.",
)
@json_option
@click.pass_context
def ci(
    ctx: click.Context,
    base: str | None,
    fail_fast: bool,
    no_compute_baseline: bool,
    no_serve: bool,
    output_dir: Path | None,
    comment: bool | None,
    pr_number: int | None,
    as_json: bool,
) -> None:
    """Run the ML tests of a change and compare it with the base branch.

    Stages, each timed: the pytest suite; the pipeline on the CI sample (ci.sample); data
    checks and drift against the baseline's data; model checks and champion/challenger
    against the baseline's model; a smoke test and a short load test of the package. The
    baseline is the run at the merge-base with the base branch, found in the metadata store
    or computed in a temporary git worktree. Writes a Markdown report, JUnit XML and a GitLab
    metrics report, appends to $GITHUB_STEP_SUMMARY, and comments on the pull request when a
    token is set. Exit code 1 when a blocking check fails.
    """
    # The team's pytest runs in a child process beside the other stages: on a CI runner's
    # few cores, OpenMP and BLAS pools sized to every core in both processes spin against
    # each other (the model stage took 10x longer). One thread each, unless the user set it;
    # set before numpy or scikit-learn is imported, so their pools are sized by it.
    from conveyor.ci.pytest_stage import THREAD_VARIABLES

    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    from conveyor.ci.junit import render_gitlab_metrics, render_junit
    from conveyor.ci.report import render_markdown
    from conveyor.ci.run import CIOptions, run_ci
    from conveyor.cli.run_cmd import LineReporter

    project = open_project_from(ctx)
    options = CIOptions(
        base=base,
        fail_fast=fail_fast,
        compute_baseline=not no_compute_baseline,
        serve=not no_serve,
        reporter=LineReporter(explain=False),
    )
    found = run_ci(project, options, status)
    markdown = render_markdown(found)
    directory = output_dir or project.state_dir / "ci"
    directory.mkdir(parents=True, exist_ok=True)
    import json

    texts = {
        "markdown": markdown,
        "junit": render_junit(found),
        "gitlab_metrics": render_gitlab_metrics(found),
        "json": json.dumps(found.to_json(), indent=2, sort_keys=True, default=str) + "\n",
    }
    for key, text in texts.items():
        write_atomically(directory / REPORT_FILES[key], text, "--output-dir")
    status(f"wrote {', '.join(REPORT_FILES.values())} to {directory}")
    _publish(markdown, comment, pr_number)
    if as_json:
        emit_json(found.to_json())
    else:
        result(markdown.rstrip("\n"))
    if not found.passed:
        status(f"conveyor ci failed: {len(found.blocking)} blocking checks", fg="red", bold=True)
        ctx.exit(EXIT_FAILED)
    status("conveyor ci passed", fg="green")


def _publish(markdown: str, comment: bool | None, number: int | None) -> None:
    """Job summary and pull-request comment; a failure to publish is a warning, not a verdict."""
    from conveyor.ci.github import github_target, upsert_comment, write_step_summary
    from conveyor.ci.gitlab import gitlab_target, upsert_note
    from conveyor.errors import PublishError

    environ = dict(os.environ)
    try:
        summary = write_step_summary(environ, markdown)
        if summary is not None:
            status(f"appended the report to the job summary ({summary})")
        if comment is False:
            return
        github, gitlab = github_target(environ, number), gitlab_target(environ, number)
        if github is not None:
            action, ident = upsert_comment(github, markdown)
            status(f"{action} pull-request comment {ident} on {github.repository}#{github.number}")
        if gitlab is not None:
            action, ident = upsert_note(gitlab, markdown)
            status(f"{action} merge-request note {ident} on !{gitlab.iid}")
        if comment and github is None and gitlab is None:
            status(
                "warning: --comment: no token and pull request known (set GITHUB_TOKEN or "
                "GITLAB_TOKEN, and --pr N outside a pull-request job)",
                fg="yellow",
            )
    except PublishError as exc:
        status(f"warning: the report was not published: {exc.message}", fg="yellow")
        if exc.hint:
            status(f"  hint: {exc.hint}", fg="yellow")
