"""``conveyor ci``: the stages in order, each timed, and the result they add up to.

1. tests: the team's pytest suite (with the ``conveyor.testing`` plugin);
2. pipeline: the pipeline on the CI sample, every step and artifact contract checked;
   then the baseline (:mod:`conveyor.ci.baseline`);
3. data: the candidate's data checks, and drift of its data against the baseline's;
4. model: its model checks, and champion/challenger against the baseline's model;
5. serving: a smoke test and a short load test of its package.

A failed check blocks when its severity is ``error`` and the gate that recorded it enforced
it (a gate with ``policy: warning`` only warns). ``fail_fast`` skips the stages after the
first one with a blocking failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.ci import compare
from conveyor.ci.baseline import resolve_baseline
from conveyor.ci.pytest_stage import PytestRun, test_paths
from conveyor.ci.result import (
    Baseline,
    CIResult,
    Comparison,
    Stage,
    StageStatus,
    skipped,
    stage_of,
    warning,
)
from conveyor.config_delivery import seconds
from conveyor.core.checks import CheckResult, Severity
from conveyor.core.pipeline import Pipeline
from conveyor.core.records import StepStatus
from conveyor.engine.gitinfo import git_state
from conveyor.engine.project import Project
from conveyor.engine.run import NullReporter, Reporter, RunOptions, RunOutcome, run_pipeline
from conveyor.errors import ConfigError, ConveyorError
from conveyor.store import queries

TITLES = {
    "tests": "Tests (pytest)",
    "pipeline": "Pipeline on the CI sample",
    "baseline": "Baseline",
    "data": "Data checks",
    "model": "Model checks",
    "serving": "Serving",
}
ORDER = tuple(TITLES)


@dataclass(frozen=True, slots=True, kw_only=True)
class CIOptions:
    base: str | None = None  # default: ci.base, else the repository's default branch
    fail_fast: bool = False
    compute_baseline: bool = True
    serve: bool = True
    reporter: Reporter | None = None


def sample_params(project: Project, pipeline: str | None) -> dict[str, str]:
    """The CI sample as ``-p`` style param overrides (see :mod:`conveyor.config_ci`)."""
    sample = project.config.ci.sample
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in sample.params.items()}
    if sample.rows is not None:
        params[sample.row_param] = str(sample.rows)
    elif sample.fraction is not None:
        full = _full_rows(project, pipeline, sample.row_param)
        params[sample.row_param] = str(max(1, round(full * sample.fraction)))
    return params


def _full_rows(project: Project, pipeline: str | None, param: str) -> int:
    value: Any = project.config.params.get(param)
    if value is None:
        pipe = project.pipeline(pipeline)
        specs = pipe.params if isinstance(pipe, Pipeline) else ()
        value = next((s.default for s in specs if s.name == param and not s.required), None)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"ci.sample.fraction needs the pipeline param '{param}' with a whole number of rows",
            hint="set ci.sample.row_param to the param that sets the row count, or use "
            "ci.sample.rows",
        )
    return value


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed


def run_ci(project: Project, options: CIOptions, say: Callable[[str], None]) -> CIResult:
    """Run every stage; never raises for a failing check, only for usage and config errors.

    The test suite runs in a child process while stages 2 to 4 run here; its result is
    collected before the serving stage, whose load test must not share the CPU with it.
    """
    cfg = project.config.ci
    params = sample_params(project, cfg.pipeline)
    paths = test_paths(project.root, cfg.tests)
    tests: PytestRun | None = None
    if paths:
        say(f"stage 1/5: pytest {' '.join(paths)} (in a child process)")
        tests = PytestRun(project.root, paths, cfg.pytest_args, seconds(cfg.timeout))
    try:
        return _Stages(project, options, params, tests, say).run()
    finally:
        if tests is not None:
            tests.close()


class _Stages:
    def __init__(
        self,
        project: Project,
        options: CIOptions,
        params: dict[str, str],
        tests: PytestRun | None,
        say: Callable[[str], None],
    ) -> None:
        self.project, self.options, self.params, self.say = project, options, params, say
        self.tests = tests
        self.joined = False
        self.stages: list[Stage] = []
        self.clock = _Clock()
        self.started = time.perf_counter()
        self.git = git_state(project.root)

    def join_tests(self) -> None:
        if self.joined:
            return
        self.joined = True
        if self.tests is None:
            why = "no tests directory (set ci.tests)"
            self.stages.append(skipped("tests", TITLES["tests"], why))
            return
        found, notes, took = self.tests.wait()
        self.stages.append(stage_of("tests", TITLES["tests"], found, took, notes))

    def stop(self) -> bool:
        if not self.options.fail_fast:
            return False
        if self.tests is not None and self.tests.done():
            self.join_tests()  # a failing suite that has finished stops what comes next
        return any(s.status == StageStatus.FAILED for s in self.stages)

    def finish(
        self, outcome: RunOutcome, baseline: Baseline, comparing: _Comparing | None
    ) -> CIResult:
        self.join_tests()
        return _finish(
            self.project,
            self.git,
            self.params,
            self.started,
            self.stages,
            outcome,
            baseline,
            comparing,
        )

    def run(self) -> CIResult:
        project, cfg, say = self.project, self.project.config.ci, self.say
        say("stage 2/5: the pipeline on the CI sample")
        outcome = run_pipeline(
            project,
            RunOptions(pipeline=cfg.pipeline, params=self.params),
            self.options.reporter or NullReporter(),
        )
        recorded = _recorded(project, outcome)
        checks = _step_checks(outcome, recorded)
        self.stages.append(stage_of("pipeline", TITLES["pipeline"], checks, self.clock.lap()))
        if self.stop():
            return self.finish(outcome, _no_baseline("--fail-fast"), None)
        say("baseline: looking up the run at the merge-base")
        baseline = resolve_baseline(
            project,
            base=self.options.base or cfg.base,
            explicit=self.options.base is not None,
            pipeline=outcome.pipeline,
            params=self.params,
            candidate_run=outcome.run_id,
            compute_missing=self.options.compute_baseline,
            say=say,
        )
        self.stages.append(
            Stage(
                name="baseline",
                title=TITLES["baseline"],
                status=StageStatus.PASSED,
                duration_s=self.clock.lap(),
                notes=(baseline.describe(),),
            )
        )
        mine = compare.RunView.read(project, outcome.run_id)
        theirs = compare.RunView.read(project, baseline.run_id) if baseline.run_id else None
        comparing = _Comparing(project, mine, theirs)
        say("stage 3/5: data checks")
        self.stages.append(comparing.data(recorded, self.clock))
        if self.stop():
            return self.finish(outcome, baseline, comparing)
        say("stage 4/5: model checks")
        self.stages.append(comparing.model(recorded, self.clock))
        if self.stop():
            return self.finish(outcome, baseline, comparing)
        # The package is built, served and smoke-tested while the suite may still run; the
        # load test waits for the suite to end, so that it measures the service alone.
        waited = [0.0]

        def load_may_start() -> bool:
            start = time.perf_counter()
            self.join_tests()
            waited[0] = time.perf_counter() - start
            return not self.stop()

        self.clock.lap()
        serving = comparing.serving(
            outcome, self.options.serve, say, self.clock, load_may_start, waited
        )
        self.join_tests()  # when the serving stage was skipped before its load test
        self.stages.append(serving)
        return self.finish(outcome, baseline, comparing)


def _no_baseline(why: str) -> Baseline:
    return Baseline(
        base_ref=None, commit=None, run_id=None, source="none", reason=f"not looked up ({why})"
    )


def _recorded(project: Project, outcome: RunOutcome) -> list[tuple[str, CheckResult]]:
    """The run's recorded checks as (step, result); a gate that did not fail its step (a
    ``warning`` policy) recorded failures that do not block."""
    status = {s.name: s.status for s in outcome.steps}
    found = []
    for raw in queries.check_results(project.metadata, outcome.run_id):
        result = CheckResult(
            name=f"{raw['step']}/{raw['name']}",
            kind=raw["kind"],
            passed=raw["passed"],
            severity=Severity(raw["severity"]),
            metrics=raw["metrics"],
            message=raw["message"] or "",
            details=raw["details"],
        )
        if status.get(raw["step"]) != StepStatus.FAILED:
            result = warning(result)
        found.append((raw["step"], result))
    return found


def _step_checks(outcome: RunOutcome, recorded: list[tuple[str, CheckResult]]) -> list[CheckResult]:
    """One check per step, then the artifact contracts. A step stopped by its own gate is
    reported by that gate's checks (in the data or model stage), so it does not count twice."""
    gated = {step for step, c in recorded if not c.passed and c.severity == Severity.ERROR}
    checks = []
    for s in outcome.steps:
        ok = s.status in (StepStatus.SUCCEEDED, StepStatus.CACHED)
        if ok:
            message = str(s.status) + (f" in {s.duration_s:.2f} s" if s.duration_s else "")
        elif s.status == StepStatus.SKIPPED:
            message = f"skipped: {s.error}"
        else:
            message = _last_lines(s.error or "failed")
        severity = (
            Severity.INFO if s.name in gated or s.status == StepStatus.SKIPPED else Severity.ERROR
        )
        checks.append(
            CheckResult(
                name=f"step:{s.name}",
                kind="pipeline",
                passed=ok,
                severity=severity,
                message=message,
                metrics={"duration_s": s.duration_s},
            )
        )
    contracts = [c for _, c in recorded if c.kind not in ("data", "model")]
    return checks + contracts


def _last_lines(error: str) -> str:
    lines = error.strip().splitlines()
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]
    return "\n".join(lines[:20])


class _Comparing:
    """Stages 3 to 5, which read the candidate run and the baseline run."""

    def __init__(
        self, project: Project, mine: compare.RunView, theirs: compare.RunView | None
    ) -> None:
        self.project, self.mine, self.theirs = project, mine, theirs
        self.drifted: list[str] = []
        self.anomalies: list[str] = []
        self.sizes: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.figures: dict[str, float] = {}

    def data(self, recorded: list[tuple[str, CheckResult]], clock: _Clock) -> Stage:
        checks = [c for _, c in recorded if c.kind == "data"]
        self.anomalies = [
            f"{c.name}: {c.message}" for c in checks if not c.passed and ":" in c.name
        ]
        notes: list[str] = []
        if self.theirs is None:
            notes.append("no baseline: drift against it was not measured")
        else:
            more, self.drifted, notes = compare.drift_checks(self.project, self.mine, self.theirs)
            checks += more
        return stage_of("data", TITLES["data"], checks, clock.lap(), notes)

    def model(self, recorded: list[tuple[str, CheckResult]], clock: _Clock) -> Stage:
        checks = [c for _, c in recorded if c.kind == "model"]
        notes: list[str] = []
        if self.theirs is None:
            notes.append("no baseline: champion/challenger was not run")
        else:
            more, notes, self.sizes, self.latency = compare.model_checks(
                self.project, self.mine, self.theirs
            )
            checks += more
        return stage_of("model", TITLES["model"], checks, clock.lap(), notes)

    def serving(
        self,
        outcome: RunOutcome,
        enabled: bool,
        say: Callable[[str], None],
        clock: _Clock,
        load_may_start: Callable[[], bool],
        waited: list[float],
    ) -> Stage:
        from conveyor.ci.serving import serving_checks

        if not (enabled and self.project.config.ci.serve.enabled):
            return skipped(
                "serving", TITLES["serving"], "turned off (ci.serve.enabled or --no-serve)"
            )
        if outcome.status != "succeeded":
            return skipped("serving", TITLES["serving"], "the candidate run did not succeed")
        digest = compare.model_digest(self.mine, self.project.config.ci.model)
        if digest is None:
            return skipped("serving", TITLES["serving"], "no model found in the candidate run")
        say("stage 5/5: smoke test and load test of the candidate's package")
        clock.lap()
        try:
            checks, notes, self.figures = serving_checks(
                self.project, self.mine, digest, say, load_may_start
            )
        except ConfigError:
            raise
        except ConveyorError as exc:
            checks, notes = (
                [CheckResult(name="serve", kind="serving", passed=False, message=exc.message)],
                [],
            )
        # the time spent waiting for the test suite is the tests stage's, not this one's
        return stage_of("serving", TITLES["serving"], checks, clock.lap() - waited[0], notes)

    def numbers(self, outcome: RunOutcome) -> Comparison:
        theirs = self.theirs
        return Comparison(
            metrics=tuple(compare.metric_deltas(self.project, self.mine, theirs)),
            params=tuple(compare.param_changes(self.project, outcome.run_id, theirs.run_id))
            if theirs
            else (),
            drifted=tuple(self.drifted),
            anomalies=tuple(self.anomalies),
            model_size=self.sizes,
            predict_latency_ms=self.latency,
            serving=self.figures,
        )


def _finish(
    project: Project,
    git: Any,
    params: dict[str, str],
    started: float,
    stages: list[Stage],
    outcome: RunOutcome,
    baseline: Baseline,
    comparing: _Comparing | None,
) -> CIResult:
    done = {s.name for s in stages}
    for name in ORDER:
        if name not in done:
            stages.append(skipped(name, TITLES[name], "not run: --fail-fast stopped earlier"))
    stages.sort(key=lambda s: ORDER.index(s.name))
    return CIResult(
        project=project.config.name,
        pipeline=outcome.pipeline,
        commit=git.commit,
        dirty=git.dirty,
        run_id=outcome.run_id,
        sample=params,
        baseline=baseline,
        stages=tuple(stages),
        elapsed_s=time.perf_counter() - started,
        comparison=comparing.numbers(outcome) if comparing else Comparison(),
    )
