"""Stage 5: the candidate's release package, smoke-tested and load-tested.

The package is built exactly as ``conveyor model package`` builds it, but into a temporary
directory and without registering a model version: a pull request must not add versions to
the registry. The package is served in a fresh process on a free local port; the smoke test
sends it the golden rows and requires the golden predictions back, then the load test holds
it to ``ci.serve.slo`` for a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from conveyor.ci.compare import RunView
from conveyor.config_delivery import seconds
from conveyor.core.checks import CheckResult
from conveyor.engine.project import Project
from conveyor.errors import ConveyorError
from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.payloads import build_payload, mlflow_body, rows_from_package
from conveyor.loadtest.run import run_loadtest
from conveyor.loadtest.service import serve_package
from conveyor.loadtest.shape import LoadShape
from conveyor.loadtest.slo import slo_from_mapping
from conveyor.registry.versions import ModelVersion

GOLDEN_ROWS = 200
GOLDEN_TOLERANCE = 1e-6
SMOKE_TIMEOUT_S = 60.0


def _candidate_version(project: Project, view: RunView, digest: str) -> ModelVersion | None:
    for step in view.steps:
        for output, found in step.outputs.items():
            if found == digest:
                name = project.config.model.name or project.config.name
                return ModelVersion(
                    name=name,
                    version=0,
                    run_id=view.run_id,
                    step=step.name,
                    output=output,
                    digest=digest,
                    description="conveyor ci candidate (not registered)",
                )
    return None


def _build(project: Project, mv: ModelVersion, root: Path) -> None:
    # The package's own gather and write steps, without storing it or touching the registry.
    from conveyor.registry import package

    contents = package._gather(project, mv, None, GOLDEN_ROWS)
    package._write(root, mv, contents)


def smoke_check(host: str, port: int, directory: Path) -> CheckResult:
    """POST the golden inputs to the running service; its answers must be the golden ones."""
    from conveyor.registry.infra import compare_predictions
    from conveyor.registry.package import GOLDEN_INPUTS, read_package

    package = read_package(directory)
    golden = json.loads((directory / GOLDEN_INPUTS).read_text(encoding="utf-8"))
    body = mlflow_body(golden["columns"], golden["data"])
    request = urllib.request.Request(
        f"http://{host}:{port}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT_S) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:
        return CheckResult(
            name="smoke:golden",
            kind="serving",
            passed=False,
            message=f"POST /invocations with the golden rows failed: {exc}",
        )
    found = compare_predictions(package.golden_predictions(), answer, GOLDEN_TOLERANCE)
    return dataclasses.replace(found, name="smoke:golden", kind="serving")


def serving_checks(
    project: Project,
    view: RunView,
    model_digest: str,
    say: Callable[[str], None],
    load_may_start: Callable[[], bool] = lambda: True,
) -> tuple[list[CheckResult], list[str], dict[str, float]]:
    """(checks, notes, serving figures: qps, p50_ms, p99_ms, error_rate).

    The package is built, served and smoke-tested at once; ``load_may_start()`` is called
    before the load test (which must not share the CPU with other work) and may wait for
    that work to end; False skips the load test."""
    cfg = project.config.ci.serve
    mv = _candidate_version(project, view, model_digest)
    if mv is None:
        return [], ["the model is not an output of the candidate run"], {}
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-ci-package-"))
    root = scratch / "package"
    try:
        try:
            _build(project, mv, root)
        except ConveyorError as exc:
            return [], [f"the model could not be packaged, so it was not served: {exc.message}"], {}
        slo = slo_from_mapping(cfg.slo, "conveyor.yaml: ci.serve.slo")
        shape = LoadShape(
            concurrency=cfg.concurrency,
            duration_s=seconds(cfg.duration),
            warmup_s=seconds(cfg.warmup),
        )
        rows = rows_from_package(root, project, mv)
        with serve_package(project, root, progress=say) as (host, port):
            say("smoke test: the golden rows through the service")
            smoke = smoke_check(host, port, root)
            if not smoke.passed:
                return [smoke], ["the package failed its smoke test: no load test"], {}
            if not load_may_start():
                return [smoke], ["--fail-fast: an earlier stage failed, so no load test"], {}
            endpoint = Endpoint(host=host, port=port, path="/invocations")
            report = run_loadtest(
                endpoint,
                build_payload(endpoint, rows),
                shape,
                slo=slo,
                ceiling_s=None,
                progress=say,
            )
        m = report.measurement
        figures = {
            "qps": m.qps,
            "p50_ms": m.latency.p50_ms,
            "p99_ms": m.latency.p99_ms,
            "error_rate": m.error_rate,
        }
        return [smoke, *report.checks], [], {k: v for k, v in figures.items() if math.isfinite(v)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
