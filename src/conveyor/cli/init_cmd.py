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
def init(directory: Path, name: str | None) -> None:
    """Create a working project in DIRECTORY (default: the current one).

    Writes conveyor.yaml, a training pipeline, a unit test and a .gitignore. Existing files are
    never overwritten.
    """
    from conveyor.engine.scaffold import init_project

    written = init_project(directory, name)
    for path in written:
        status(f"  created {path}")
    result(f"project ready in {directory}; next: cd {directory} && conveyor run")
