"""Stages 3 and 4 against the baseline: drift of the candidate's data from the baseline's, and
champion/challenger of the candidate's model against the baseline's on the same rows (a paired
bootstrap), with the metric, param, size and latency deltas the report shows."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from conveyor.checks.gate_config import GateConfig, parse_champion
from conveyor.checks.metrics import HIGHER_IS_BETTER
from conveyor.checks.model_gate import validate_model
from conveyor.checks.model_output import model_output
from conveyor.ci.result import MetricDelta, ParamChange, warning
from conveyor.core.checks import CheckResult, Severity
from conveyor.core.records import ArtifactInfo, StepRunRecord
from conveyor.engine.project import Project
from conveyor.errors import ConfigError, ConveyorError
from conveyor.store import queries

EVALUATION_STEPS = ("validate_model", "evaluate_model")
DEFAULT_METRICS = ("roc_auc", "accuracy", "rmse", "mae")
LATENCY_CALLS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class RunView:
    """A run's steps, with its inputs and outputs, read once."""

    run_id: str
    steps: tuple[StepRunRecord, ...]

    @classmethod
    def read(cls, project: Project, run_id: str) -> RunView:
        return cls(run_id, tuple(queries.step_runs(project.metadata, run_id)))

    def step(self, name: str) -> StepRunRecord | None:
        return next((s for s in self.steps if s.name == name), None)

    def output(self, ref: str) -> str | None:
        """The digest of ``STEP`` (its only output) or ``STEP.OUTPUT``."""
        name, _, output = ref.partition(".")
        step = self.step(name)
        if step is None:
            return None
        if output:
            return step.outputs.get(output)
        return next(iter(step.outputs.values())) if len(step.outputs) == 1 else None

    def input_of(self, steps: Sequence[str], port: str) -> str | None:
        for name in steps:
            step = self.step(name)
            if step is not None and port in step.inputs:
                return step.inputs[port]
        return None


def model_digest(view: RunView, configured: str | None) -> str | None:
    if configured:
        return view.output(configured)
    return view.input_of(EVALUATION_STEPS, "model") or view.output("train")


def data_digest(view: RunView, configured: str | None) -> str | None:
    if configured:
        return view.output(configured)
    return view.input_of(("validate_data",), "data")


def load(project: Project, digest: str) -> tuple[Any, ArtifactInfo]:
    info = queries.find_artifact(project.metadata, digest)
    return project.artifacts.load(info), info


# -- data ------------------------------------------------------------------------------------


def drift_checks(
    project: Project, candidate: RunView, baseline: RunView
) -> tuple[list[CheckResult], list[str], list[str]]:
    """(checks, drifted features, notes) of the candidate's data against the baseline's."""
    from conveyor.checks.drift import drift
    from conveyor.checks.drift_config import drift_options

    ref = project.config.ci.data
    mine, theirs = data_digest(candidate, ref), data_digest(baseline, ref)
    if mine is None or theirs is None:
        where = f"ci.data '{ref}'" if ref else "the input of a validate_data step"
        return [], [], [f"no data to compare with the baseline ({where} is not in both runs)"]
    current, _ = load(project, mine)
    reference, _ = load(project, theirs)
    if not isinstance(current, pd.DataFrame) or not isinstance(reference, pd.DataFrame):
        return [], [], ["the data artifacts are not tables: drift was not measured"]
    report = drift(reference, current, drift_options(project.config.checks.data.drift))
    checks = [dataclasses.replace(c, name=f"baseline_{c.name}") for c in report.check_results()]
    if project.config.checks.data.policy == "warning":
        checks = [warning(c) for c in checks]
    drifted = [f.column for f in report.features if f.drifted]
    return checks, drifted, []


# -- model -----------------------------------------------------------------------------------


def champion_rule(project: Project, metrics: dict[str, float]) -> dict[str, Any] | None:
    """ci.champion, else checks.model.champion, else a 0.01 max drop on the main metric."""
    cfg = project.config
    if cfg.ci.champion:
        return dict(cfg.ci.champion)
    if cfg.checks.model.champion:
        return dict(cfg.checks.model.champion)
    candidates = [*cfg.checks.model.thresholds, *DEFAULT_METRICS]
    metric = next((m for m in candidates if m in metrics and m in HIGHER_IS_BETTER), None)
    return None if metric is None else {"metric": metric, "max_drop": 0.01}


def model_checks(
    project: Project, candidate: RunView, baseline: RunView
) -> tuple[list[CheckResult], list[str], dict[str, float], dict[str, float]]:
    """(checks, notes, model sizes, single-row predict latencies in ms)."""
    cfg = project.config
    ref = cfg.ci.model
    mine, theirs = model_digest(candidate, ref), model_digest(baseline, ref)
    if mine is None or theirs is None:
        where = f"ci.model '{ref}'" if ref else "the model an evaluate_model step scored"
        return [], [f"no model to compare with the baseline ({where} is not in both runs)"], {}, {}
    challenger, mine_info = load(project, mine)
    champion, theirs_info = load(project, theirs)
    sizes = {"baseline": float(theirs_info.size), "candidate": float(mine_info.size)}
    rows_digest = candidate.input_of(EVALUATION_STEPS, "data")
    label = cfg.checks.model.label
    if rows_digest is None or not label:
        note = "no evaluation rows (an evaluate_model step and checks.model.label) to compare on"
        return [], [note], sizes, {}
    rows, _ = load(project, rows_digest)
    if not isinstance(rows, pd.DataFrame) or label not in rows.columns:
        return [], [f"the evaluation rows have no label column '{label}'"], sizes, {}
    features, target = rows.drop(columns=[label]), rows[label]
    metrics = queries.run_metrics(project.metadata, candidate.run_id)
    raw = champion_rule(project, metrics)
    if raw is None:
        return (
            [],
            ["no champion rule: set ci.champion (e.g. {metric: roc_auc, max_drop: 0.01})"],
            sizes,
            {},
        )
    rule = parse_champion(raw, "ci.champion" if cfg.ci.champion else "checks.model.champion")
    unusable = _cannot_score(champion, features, cfg.model.predict)
    if unusable:
        unscored = CheckResult(
            name=f"baseline_champion:{rule.metric}",
            kind="model",
            passed=False,
            severity=Severity.WARNING,
            message=f"the baseline's model cannot score the candidate's evaluation rows "
            f"({unusable}); compare the metrics of the two runs instead",
        )
        return [unscored], [], sizes, {}
    slices = cfg.checks.model.slices if rule.slice_max_drop is not None else []
    gate = GateConfig(champion=rule, slices=tuple(slices))
    try:
        outcome = validate_model(
            challenger, features, target, gate, champion=champion, predict=cfg.model.predict
        )
    except ConfigError:
        raise
    except ConveyorError as exc:
        failed = CheckResult(
            name=f"champion:{rule.metric}", kind="model", passed=False, message=exc.message
        )
        return [failed], [], sizes, {}
    checks = [dataclasses.replace(c, name=f"baseline_{c.name}") for c in outcome.results]
    if cfg.checks.model.policy == "warning":
        checks = [warning(c) for c in checks]
    latency = {
        "baseline": _latency_ms(champion, features, cfg.model.predict),
        "candidate": _latency_ms(challenger, features, cfg.model.predict),
    }
    return checks, [], sizes, {k: v for k, v in latency.items() if v is not None}


def _cannot_score(model: Any, features: pd.DataFrame, predict: Any) -> str | None:
    """Why ``model`` cannot predict on these rows (other feature columns), or None."""
    try:
        model_output(model, features.head(5), predict)
    except ConveyorError as exc:
        return exc.message
    return None


def _latency_ms(model: Any, features: pd.DataFrame, predict: Any) -> float | None:
    """Median time of a one-row prediction in this process, in milliseconds."""
    row = features.head(1)
    try:
        model_output(model, row, predict)  # warm-up
        times = []
        for _ in range(LATENCY_CALLS):
            start = time.perf_counter()
            model_output(model, row, predict)
            times.append(time.perf_counter() - start)
    except ConveyorError:
        return None
    return statistics.median(times) * 1000.0


# -- numbers ---------------------------------------------------------------------------------


def metric_deltas(
    project: Project, candidate: RunView, baseline: RunView | None
) -> list[MetricDelta]:
    """Every metric either run logged, with the candidate's interval when it has one."""
    mine = queries.run_metrics(project.metadata, candidate.run_id)
    theirs = queries.run_metrics(project.metadata, baseline.run_id) if baseline else {}
    intervals = _intervals(project, candidate)
    names = list(dict.fromkeys([*mine, *theirs]))
    out = []
    for name in names:
        iv = intervals.get(name)
        out.append(
            MetricDelta(
                name=name,
                baseline=theirs.get(name),
                candidate=mine.get(name),
                higher_is_better=HIGHER_IS_BETTER.get(name.rpartition(".")[2]),
                low=iv[0] if iv else None,
                high=iv[1] if iv else None,
                confidence=iv[2] if iv else None,
            )
        )
    return out


def _intervals(project: Project, view: RunView) -> dict[str, tuple[float, float, float]]:
    from conveyor.checks.evaluation import SCHEMA

    step = view.step("evaluate_model")
    digest = next(iter(step.outputs.values()), None) if step else None
    if digest is None:
        return {}
    try:
        raw, _ = load(project, digest)
    except ConveyorError:
        return {}
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        return {}
    found = {}
    for name, iv in (raw.get("intervals") or {}).items():
        if isinstance(iv, dict) and {"low", "high", "confidence"} <= iv.keys():
            found[name] = (float(iv["low"]), float(iv["high"]), float(iv["confidence"]))
    return found


def param_changes(project: Project, candidate: str, baseline: str) -> list[ParamChange]:
    def flat(run_id: str) -> dict[str, Any]:
        run = queries.get_run(project.metadata, run_id)
        values = dict(run.params)
        for scope, params in queries.step_params(project.metadata, run_id).items():
            values.update({f"{scope}.{k}": v for k, v in params.items()})
        return values

    mine, theirs = flat(candidate), flat(baseline)
    return [
        ParamChange(name=k, baseline=theirs.get(k), candidate=mine.get(k))
        for k in sorted(mine.keys() | theirs.keys())
        if mine.get(k) != theirs.get(k)
    ]


def severity_counts(checks: Sequence[CheckResult]) -> dict[str, int]:
    failed = [c for c in checks if not c.passed]
    return {
        "blocking": sum(c.severity == Severity.ERROR for c in failed),
        "warnings": sum(c.severity == Severity.WARNING for c in failed),
    }
