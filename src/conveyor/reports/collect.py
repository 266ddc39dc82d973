"""Gather what a report shows about one run from the metadata and artifact stores.

Every JSON output of the run's steps (up to ``max_bytes``) is read and recognised by its
``"schema"`` key; other artifacts are left alone. A gate step that failed stored no verdict,
so its section is rebuilt from the check results it recorded before failing. An artifact
that cannot be read (missing, damaged) becomes a note in the report instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.checks.evaluation import SCHEMA as EVALUATION_SCHEMA
from conveyor.checks.evaluation import Evaluation
from conveyor.checks.model_gate import outcome
from conveyor.core.checks import CheckResult, Severity
from conveyor.core.records import RunRecord, StepRunRecord, StepStatus
from conveyor.errors import ConveyorError
from conveyor.reports.sections import (
    DRIFT_SCHEMA,
    GATE_SCHEMA,
    VALIDATION_SCHEMA,
    DriftSection,
    EvaluationSection,
    GateSection,
    RunHeader,
    RunReport,
    StepRow,
    ValidationSection,
    check_row,
    drift_from_dict,
    gate_from_dict,
    parsed,
    validation_from_dict,
)
from conveyor.store import queries
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.metadata import MetadataStore

MAX_ARTIFACT_BYTES = 5 << 20
Section = EvaluationSection | GateSection | ValidationSection | DriftSection
Parser = Callable[[Mapping[str, Any], str], Section]


def _evaluation(raw: Mapping[str, Any], step: str) -> EvaluationSection:
    return EvaluationSection(step=step, evaluation=Evaluation.from_dict(dict(raw)))


PARSERS: dict[str, Parser] = {
    EVALUATION_SCHEMA: _evaluation,
    GATE_SCHEMA: gate_from_dict,
    VALIDATION_SCHEMA: validation_from_dict,
    DRIFT_SCHEMA: drift_from_dict,
}


def collect_report(
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    run_ref: str,
    *,
    max_bytes: int = MAX_ARTIFACT_BYTES,
) -> RunReport:
    """The :class:`RunReport` of run ``run_ref`` (an id, a unique prefix, ``latest~N``).

    Raises NotFoundError when there is no such run; everything else is reported in it.
    """
    run = queries.get_run(metadata, run_ref)
    steps = queries.step_runs(metadata, run.id)
    raw_checks = queries.check_results(metadata, run.id)
    sections, notes = _artifact_sections(metadata, artifacts, steps, max_bytes)
    sections += _failed_gate_sections(steps, raw_checks, sections)
    return RunReport(
        run=_header(run),
        steps=tuple(_step_row(s) for s in steps),
        metrics=dict(queries.run_metrics(metadata, run.id)),
        checks=tuple(check_row(c, c["step"]) for c in raw_checks),
        evaluations=tuple(s for s in sections if isinstance(s, EvaluationSection)),
        gates=tuple(s for s in sections if isinstance(s, GateSection)),
        validations=tuple(s for s in sections if isinstance(s, ValidationSection)),
        drifts=tuple(s for s in sections if isinstance(s, DriftSection)),
        notes=tuple(notes),
    )


def _header(run: RunRecord) -> RunHeader:
    return RunHeader(
        id=run.id,
        pipeline=run.pipeline,
        status=str(run.status),
        started_at=run.started_at,
        ended_at=run.ended_at,
        git_commit=run.git_commit,
        git_dirty=run.git_dirty,
        params=dict(run.params),
        error=run.error,
    )


def _step_row(s: StepRunRecord) -> StepRow:
    return StepRow(
        name=s.name,
        status=str(s.status),
        duration_s=s.duration_s,
        outputs=dict(s.outputs),
        error=s.error,
    )


def _artifact_sections(
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    steps: Sequence[StepRunRecord],
    max_bytes: int,
) -> tuple[list[Section], list[str]]:
    sections: list[Section] = []
    notes: list[str] = []
    seen: set[str] = set()
    for s in steps:
        for output, digest in s.outputs.items():
            if digest in seen:
                continue
            seen.add(digest)
            where = f"output '{output}' of step '{s.name}' ({digest[:12]})"
            try:
                section = _section(metadata, artifacts, digest, s.name, max_bytes)
            except ConveyorError as exc:
                notes.append(f"{where} was left out: {exc.message}")
                continue
            if isinstance(section, str):
                notes.append(f"{where} {section}")
            elif section is not None:
                sections.append(section)
    return sections, notes


def _section(
    metadata: MetadataStore, artifacts: ArtifactStore, digest: str, step: str, max_bytes: int
) -> Section | str | None:
    """The section an artifact holds, None for other artifacts, or why it was not read."""
    info = queries.find_artifact(metadata, digest)
    if info.materializer != "json":
        return None
    if info.size > max_bytes:
        return (
            f"is a JSON artifact of {info.size / 2**20:.1f} MB and was not read "
            f"(reports read JSON artifacts up to {max_bytes / 2**20:.1f} MB)"
        )
    raw = artifacts.load(info)
    if not isinstance(raw, dict):
        return None
    parser = PARSERS.get(str(raw.get("schema")))
    return None if parser is None else parser(raw, step)


def _failed_gate_sections(
    steps: Sequence[StepRunRecord], raw_checks: list[dict[str, Any]], found: list[Section]
) -> list[Section]:
    """Sections of gate steps that failed (and so stored no verdict) from their checks."""
    have = {(s.step, type(s)) for s in found}
    out: list[Section] = []
    for s in steps:
        if s.status != StepStatus.FAILED:
            continue
        mine = [c for c in raw_checks if c["step"] == s.name]
        builders: list[tuple[type, Callable[[str, list[dict[str, Any]]], Section | None]]] = [
            (GateSection, _gate_from_checks),
            (ValidationSection, _validation_from_checks),
            (DriftSection, _drift_from_checks),
        ]
        for kind, build in builders:
            section = None if (s.name, kind) in have else build(s.name, mine)
            if section is not None:
                out.append(section)
    return out


def _gate_from_checks(step: str, raws: list[dict[str, Any]]) -> GateSection | None:
    model = [c for c in raws if c["kind"] == "model"]
    if not model:
        return None

    def build() -> GateSection:
        results = [
            CheckResult(
                name=c["name"],
                kind=c["kind"],
                passed=c["passed"],
                severity=Severity(c["severity"]),
                message=c["message"] or "",
            )
            for c in model
        ]
        verdict = outcome(results)
        return GateSection(
            step=step,
            blessed=verdict.blessed,
            reasons=tuple(verdict.reasons),
            results=tuple(check_row(c, step) for c in model),
            from_checks=True,
        )

    return parsed("model checks", step, build)


def _validation_from_checks(step: str, raws: list[dict[str, Any]]) -> ValidationSection | None:
    top = next((c for c in raws if c["name"] == "schema" and c["kind"] == "data"), None)
    if top is None:
        return None
    columns = [c for c in raws if c["name"].startswith("schema:")]
    anomalies = [a for c in columns for a in c["details"].get("anomalies", [])]
    return validation_from_dict({"summary": top["message"], "anomalies": anomalies}, step)


def _drift_from_checks(step: str, raws: list[dict[str, Any]]) -> DriftSection | None:
    top = next((c for c in raws if c["name"] == "drift" and c["kind"] == "data"), None)
    features = [c["details"] for c in raws if c["name"].startswith("drift:") and c["details"]]
    if top is None or not features:
        return None
    return drift_from_dict({**top["details"], "features": features}, step)
