"""``conveyor init``."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import result, status


@click.command()
@click.argument(
    "directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--name", help="Project name (default: the directory's name).")
@click.option(
    "--ci",
    "ci_system",
    type=click.Choice(["github", "gitlab"]),
    help="Also write a CI workflow: .github/workflows/conveyor.yml or .gitlab-ci.yml "
    "(conveyor ci on pull requests, run and promote to test on merges, scheduled "
    "retraining). In an existing project, writes only the workflow.",
)
def init(directory: Path, name: str | None, ci_system: str | None) -> None:
    """Create a working project in DIRECTORY (default: the current one).

    Writes conveyor.yaml, a training pipeline, a unit test and a .gitignore. Existing files are
    never overwritten. With --ci, also writes a workflow file for GitHub Actions or GitLab CI.
    """
    from conveyor.config import CONFIG_NAME
    from conveyor.engine.scaffold import init_project

    existing = ci_system is not None and (directory / CONFIG_NAME).is_file()
    written = [] if existing else init_project(directory, name)
    if ci_system is not None:
        from conveyor.ci.templates import write_workflow

        written.append(write_workflow(directory, ci_system))
    for path in written:
        status(f"  created {path}")
    if existing:
        result(f"{ci_system} workflow ready in {directory}; commit it and open a pull request")
    else:
        result(f"project ready in {directory}; next: cd {directory} && conveyor run")
