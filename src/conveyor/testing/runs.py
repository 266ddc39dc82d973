"""Running a project's pipeline from a test: on a sample, in stores of its own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.config import CONFIG_NAME
from conveyor.engine.project import open_project
from conveyor.engine.run import RunOptions, RunOutcome, run_pipeline
from conveyor.errors import ConfigError, NotFoundError


@dataclass(frozen=True, slots=True)
class TestRun:
    """The outcome of a pipeline run made by a test, with access to its artifacts."""

    __test__ = False  # not a pytest test class

    root: Path
    environ: Mapping[str, str]
    outcome: RunOutcome

    @property
    def succeeded(self) -> bool:
        return self.outcome.status == "succeeded"

    def artifact(self, step: str, output: str | None = None) -> Any:
        """The value of an output of a step of this run (``output`` when it has one only)."""
        names = [s.name for s in self.outcome.steps]
        if step not in names:
            raise NotFoundError(f"the run has no step '{step}'", hint=f"steps: {names}")
        outputs = self.outcome.step(step).outputs
        if output is None:
            if len(outputs) != 1:
                raise NotFoundError(
                    f"step '{step}' has outputs {sorted(outputs)}; name one",
                    hint=f"e.g. run.artifact('{step}', '{sorted(outputs)[0] if outputs else ''}')",
                )
            output = next(iter(outputs))
        if output not in outputs:
            raise NotFoundError(
                f"step '{step}' has no output '{output}'", hint=f"outputs: {sorted(outputs)}"
            )
        with open_project(self.root, environ=self.environ) as project:
            return project.artifacts.load(outputs[output])

    @property
    def metrics(self) -> dict[str, float]:
        from conveyor.store import queries

        with open_project(self.root, environ=self.environ) as project:
            return queries.run_metrics(project.metadata, self.outcome.run_id)


def find_project_dir(start: Path) -> Path:
    """The project holding ``start``: the nearest directory with conveyor.yaml at or above it."""
    for candidate in (start.resolve(), *start.resolve().parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} at or above {start}", hint="run the tests from inside a Conveyor project"
    )


def run_sample(
    root: Path,
    state_dir: Path,
    pipeline: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    no_cache: bool = False,
) -> TestRun:
    """Run ``pipeline`` of the project at ``root`` with ``params`` (e.g. a small ``n_rows``),
    recording into stores under ``state_dir`` so the team's own runs are untouched."""
    environ = {
        **os.environ,
        "CONVEYOR_METADATA_URL": f"sqlite:///{state_dir / 'conveyor.db'}",
        "CONVEYOR_ARTIFACTS_URL": str(state_dir / "artifacts"),
    }
    cli_params = {k: v if isinstance(v, str) else _json(v) for k, v in (params or {}).items()}
    with open_project(root, environ=environ) as project:
        outcome = run_pipeline(
            project, RunOptions(pipeline=pipeline, params=cli_params, no_cache=no_cache)
        )
    return TestRun(root=root, environ=environ, outcome=outcome)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
