"""The gates a version passes to enter an environment, each returning check results.

- ``data`` and ``model``: the checks recorded on the run that trained the version (schema,
  drift, thresholds, champion, slices); every blocking one must have passed, and at least
  one must exist.
- ``infra``: the package loads in a fresh process and reproduces its golden predictions.
- ``load``: the package, served on a free local port, is load-tested against the
  environment's SLO.
- ``shadow``: requests logged in the environment before (or ``shadow.source``) are
  replayed against the candidate; its answers must agree.
- ``canary``: analysed during the rollout itself (see :mod:`conveyor.deploy.rollout`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.config_delivery import EnvironmentConfig, seconds
from conveyor.core.checks import CheckResult, Severity

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

Say = Callable[[str], None]


def evidence(results: list[CheckResult]) -> list[dict[str, Any]]:
    """Check results as a promotion event keeps them, each naming its gate."""
    return [{**r.to_json(), "gate": r.details.get("gate", r.kind)} for r in results]


def run_gates(
    project: Project,
    mv: ModelVersion,
    env: EnvironmentConfig,
    previous: str | None,
    say: Say,
) -> list[CheckResult]:
    """Every gate the environment names (``canary`` excepted: it runs during the rollout),
    in the order written; each result's details carry the gate's name."""
    results: list[CheckResult] = []
    for gate in env.gates:
        if gate == "canary":
            continue
        say(f"gate {gate}: running")
        found = GATES[gate](project, mv, env, previous, say)
        tagged = [tag(r, gate) for r in found]
        failed = [r for r in tagged if not r.passed and r.severity == Severity.ERROR]
        say(
            f"gate {gate}: "
            + (
                f"FAILED ({failed[0].message})"
                if failed
                else f"passed ({len(tagged)} check{'' if len(tagged) == 1 else 's'})"
            )
        )
        results.extend(tagged)
    return results


def tag(result: CheckResult, gate: str) -> CheckResult:
    """The result marked with the gate (or rollout) that produced it."""
    return dataclasses.replace(result, details={**result.details, "gate": gate})


def _recorded(kind: str) -> Callable[..., list[CheckResult]]:
    def gate(
        project: Project, mv: ModelVersion, env: EnvironmentConfig, previous: str | None, say: Say
    ) -> list[CheckResult]:
        from conveyor.store import queries

        rows = [r for r in queries.check_results(project.metadata, mv.run_id) if r["kind"] == kind]
        if not rows:
            return [
                CheckResult(
                    name=f"{kind}:recorded",
                    kind=kind,
                    passed=False,
                    message=f"run {mv.run_id[:12]}, which trained {mv.ref}, recorded no {kind} "
                    f"checks; add a validate_{kind} step to the pipeline, or drop the "
                    f"'{kind}' gate of environment '{env.name}'",
                )
            ]
        return [
            CheckResult(
                name=r["name"],
                kind=kind,
                passed=r["passed"],
                severity=Severity(r["severity"]),
                metrics=dict(r["metrics"]),
                message=r["message"],
                details={"run": mv.run_id, "step": r["step"]},
            )
            for r in rows
        ]

    return gate


def _infra(
    project: Project, mv: ModelVersion, env: EnvironmentConfig, previous: str | None, say: Say
) -> list[CheckResult]:
    from conveyor.registry.infra import validate_package

    report = validate_package(project, mv)
    return list(report.results)


def _load(
    project: Project, mv: ModelVersion, env: EnvironmentConfig, previous: str | None, say: Say
) -> list[CheckResult]:
    from conveyor.loadtest.run import run_loadtest
    from conveyor.loadtest.shape import LoadShape
    from conveyor.loadtest.slo import slo_from_mapping
    from conveyor.loadtest.target import open_target

    where = f"environments[{env.name}].load.slo"
    slo = slo_from_mapping(env.load.slo, where)
    shape = LoadShape(
        concurrency=env.load.concurrency,
        duration_s=seconds(env.load.duration),
        warmup_s=seconds(env.load.warmup),
    )
    with open_target(mv.ref, project=lambda: project, progress=say) as (endpoint, payload):
        report = run_loadtest(
            endpoint, payload, shape, target=mv.ref, slo=slo, ceiling_s=1.0, progress=say
        )
    m = report.measurement
    figures = f"{m.ok_qps:,.0f} requests/s, p99 {m.latency.p99_ms:.1f} ms"
    say(f"gate load: {figures}")
    measured = CheckResult(
        name="load.measured",
        kind="serving",
        passed=True,
        severity=Severity.INFO,
        metrics={"qps": m.ok_qps, "p99_ms": m.latency.p99_ms, "requests": float(m.requests)},
        message=figures,
    )
    return [measured, *report.checks]


def _shadow(
    project: Project, mv: ModelVersion, env: EnvironmentConfig, previous: str | None, say: Say
) -> list[CheckResult]:
    from conveyor.deploy.replay import replay
    from conveyor.registry.package_read import extract_package
    from conveyor.serve.model import ServedModel

    source = env.shadow.source or previous
    if source is None:  # the configuration's validation prevents this
        raise AssertionError("a shadow gate needs a source environment")
    package = extract_package(project, mv)
    directory = package.directory
    try:
        candidate = ServedModel.from_package(package, tuple(project.config.trust.skops_types))
        report = replay(project.artifacts_url, source, candidate, env.shadow)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    say(
        f"gate shadow: {report.requests} requests logged in {source} replayed, agreement "
        f"{report.agreement:.2%}"
    )
    return list(report.results)


def summarize(results: list[CheckResult]) -> str:
    """One line of figures per gate, e.g. ``load 1,234 requests/s, p99 3.1 ms``."""
    parts: list[str] = []
    for gate in dict.fromkeys(r.details.get("gate", r.kind) for r in results):
        mine = [r for r in results if r.details.get("gate", r.kind) == gate]
        passed = sum(1 for r in mine if r.passed)
        figures = {
            "load": "load.measured",
            "shadow": "shadow.agreement",
            "infra": "infra:golden",
        }.get(gate)
        shown = next((r for r in mine if r.name == figures), None)
        if gate == "canary":
            metrics: dict[str, float] = {}
            for r in mine:
                metrics.update(r.metrics)
            text = (
                f"{int(metrics.get('requests', 0))} canary requests, PSI "
                f"{metrics.get('psi', float('nan')):.3f}, p99 "
                f"{metrics.get('p99_ms', float('nan')):.1f} ms"
            )
        elif gate == "shadow" and shown is not None:
            text = f"{shown.metrics.get('agreement', 0.0):.1%} agreement"
        elif shown is not None:
            text = shown.message.split(" (")[0]
        else:
            text = f"{passed}/{len(mine)} checks passed"
        parts.append(f"{gate}: {text}")
    return "; ".join(parts)


GATES: dict[str, Callable[..., list[CheckResult]]] = {
    "data": _recorded("data"),
    "model": _recorded("model"),
    "infra": _infra,
    "load": _load,
    "shadow": _shadow,
}
