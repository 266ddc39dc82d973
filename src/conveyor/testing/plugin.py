"""The pytest plugin: fixtures for a team's ML tests (registered through the pytest11 entry
point, so installing Conveyor is enough)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.runs import TestRun, find_project_dir, run_sample


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conveyor-project",
        default=None,
        help="Conveyor project directory for the conveyor_* fixtures (default: the nearest "
        "directory with conveyor.yaml above the test file).",
    )


@pytest.fixture(scope="module")
def conveyor_project(request: pytest.FixtureRequest) -> Path:
    """The directory of the Conveyor project the test module belongs to."""
    given = request.config.getoption("--conveyor-project")
    return find_project_dir(Path(given) if given else Path(request.path).parent)


@pytest.fixture(scope="module")
def conveyor_run(
    conveyor_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., TestRun]:
    """Run a pipeline of the project on a sample: ``conveyor_run(params={"n_rows": 500})``.

    Runs record into stores of the test session (not the project's), and a run with the
    same params is reused from their cache within the module. The result gives artifacts:
    ``run.artifact("train")``, ``run.artifact("split", "test")``, ``run.metrics``.
    """
    state = tmp_path_factory.mktemp("conveyor")
    done: dict[str, TestRun] = {}

    def run(
        pipeline: str | None = None, params: dict[str, Any] | None = None, **options: Any
    ) -> TestRun:
        key = repr((pipeline, sorted((params or {}).items()), sorted(options.items())))
        if key not in done:
            done[key] = run_sample(conveyor_project, state, pipeline, params, **options)
        return done[key]

    return run


@pytest.fixture(scope="module")
def conveyor_artifact(conveyor_project: Path) -> Callable[[str], Any]:
    """Load an artifact from the project's own store: ``conveyor_artifact("latest:train")``
    (a run's step output, or a digest prefix). Read-only: nothing is run or written."""
    from conveyor.engine.lineage import resolve
    from conveyor.engine.project import open_project
    from conveyor.store import queries

    def load(ref: str) -> Any:
        with open_project(conveyor_project) as project:
            digest, run_id = resolve(project.metadata, ref)
            if digest is None:
                raise LookupError(f"'{ref}' names run {run_id}, not an artifact; add :STEP")
            return project.artifacts.load(queries.find_artifact(project.metadata, digest))

    return load
