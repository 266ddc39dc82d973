"""Compiling a packaged model to ONNX, and the proof that must pass before ONNX may serve it.

The package's model is compiled with skl2onnx, then compared with scikit-learn on the golden
rows and on a larger sample of the run's evaluation rows (labels identical, scores within a
tolerance). Only when every check passes is the ONNX file stored, next to the package.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from conveyor.core.checks import CheckResult
from conveyor.engine.project import Project
from conveyor.registry import package as pkg
from conveyor.registry.onnx import compile_onnx, equivalent, prove_equivalence
from conveyor.registry.versions import ModelVersion, set_onnx
from conveyor.store import queries

SAMPLE_ROWS = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class OnnxOutcome:
    results: list[CheckResult]
    onnx_digest: str | None  # stored only when the proof passed

    @property
    def passed(self) -> bool:
        return self.onnx_digest is not None


def _sample(project: Project, mv: ModelVersion, model: Any, fallback: Any) -> Any:
    """Up to SAMPLE_ROWS of the run's evaluation rows, as model inputs (else the golden rows)."""
    steps = queries.step_runs(project.metadata, mv.run_id)
    step = pkg._golden_step(steps, mv)
    if step is None:
        return fallback
    label = pkg._golden_params(project, step)["label"]
    rows = pkg._evaluation_rows(project, step, mv)
    return pkg._feature_frame(model, rows, label).head(SAMPLE_ROWS)


def _method(name: str) -> Literal["predict", "predict_proba"]:
    return "predict" if name == "predict" else "predict_proba"


def compile_and_prove(
    project: Project, mv: ModelVersion, *, score_tolerance: float = 1e-5
) -> OnnxOutcome:
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-onnx-"))
    try:
        package = pkg.extract_package(project, mv, tmp / "package")
        model = package.load_model(tuple(project.config.trust.skops_types))
        golden = package.golden_inputs()
        sample = _sample(project, mv, model, golden)
        compiled = compile_onnx(model, sample)
        results = prove_equivalence(
            model,
            compiled,
            golden,
            sample,
            score_tolerance=score_tolerance,
            predict=_method(package.predict),
        )
        digest = None
        if equivalent(results):
            digest = project.artifacts.blobs.put_bytes(compiled)[0]
            set_onnx(project.metadata, mv, digest)  # only a proven file may ever serve
        return OnnxOutcome(results=results, onnx_digest=digest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
