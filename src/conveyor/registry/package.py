"""Building the release package of a model version, and storing it.

A package is a directory (see docs/package.md) stored as one deterministic tar, so it is
addressed by its digest and packaging the same version twice gives the same digest. Opening and
reading one safely is :mod:`conveyor.registry.package_read`; its ``MLmodel`` and signature are
:mod:`conveyor.registry.mlflow_format`. Their public names are importable from here too.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as md
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import UsageError
from conveyor.registry import versions
from conveyor.registry.mlflow_format import (
    infer_signature,
    jsonable_rows,
    mlflow_type,
    mlmodel_text,
)
from conveyor.registry.package_read import (
    FORMAT,
    GOLDEN_INPUTS,
    GOLDEN_PREDICTIONS,
    MANIFEST,
    MODEL_FILE,
    Package,
    extract_package,
    frame_from_split,
    is_allowed_type,
    open_package,
    parse_requirements,
    read_package,
)
from conveyor.registry.package_read import (  # private, and imported from here by tests
    _safe_relative as _safe_relative,
)
from conveyor.store import queries
from conveyor.store.blobs import file_digest
from conveyor.store.materializers import SkopsEstimator, skops_io

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.core.records import StepRunRecord
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

__all__ = [
    "BASE_REQUIREMENTS",
    "EXAMPLE_ROWS",
    "FORMAT",
    "GOLDEN_INPUTS",
    "GOLDEN_PREDICTIONS",
    "GOLDEN_STEPS",
    "MANIFEST",
    "MODEL_FILE",
    "Package",
    "PackageInfo",
    "build_package",
    "dumps",
    "extract_package",
    "frame_from_split",
    "infer_signature",
    "is_allowed_type",
    "jsonable_rows",
    "mlflow_type",
    "open_package",
    "parse_requirements",
    "read_package",
]

# Distributions every package pins at the packaging environment's versions: what loading the
# model and reproducing its golden predictions needs.
BASE_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "scipy", "skops")
GOLDEN_STEPS = ("evaluate_model", "validate_model")
EXAMPLE_ROWS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageInfo:
    """A built and stored package: its digest and what went into it."""

    ref: str
    digest: str
    size: int
    files: dict[str, str]  # relative path -> sha256
    golden_rows: int
    predict: str
    requirements: dict[str, str]
    version: ModelVersion

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "size": self.size,
            "files": self.files,
            "golden_rows": self.golden_rows,
            "predict": self.predict,
            "requirements": self.requirements,
        }


def dumps(value: Any, indent: int | None = 1) -> str:
    """Deterministic JSON: sorted keys, floats written so they read back bit for bit."""
    return json.dumps(value, sort_keys=True, indent=indent, ensure_ascii=False) + "\n"


# -- building --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Contents:
    """What goes into a package, gathered before anything is written."""

    run_id: str
    created: Any  # datetime of the version (or of its run)
    model_bytes: bytes
    model_class: str
    features: pd.DataFrame
    output: Any
    predict: str
    trusted: list[str]
    train_env: dict[str, Any]
    requirements: dict[str, str]
    evidence: list[dict[str, Any]]


def build_package(
    project: Project,
    mv: ModelVersion,
    *,
    golden_rows: int = 200,
    golden: pd.DataFrame | None = None,
) -> PackageInfo:
    """Build the package of ``mv``, store it, and record its digest on the version.

    The golden rows are the first ``golden_rows`` evaluation rows of the version's run (the
    ``data`` input of its ``evaluate_model`` or ``validate_model`` step), or ``golden`` when
    given (e.g. rows read from a file, for a run without an evaluation step).
    """
    if golden_rows < 1:
        raise UsageError("golden_rows must be at least 1", hint="e.g. --golden-rows 200")
    contents = _gather(project, mv, golden, golden_rows)
    with tempfile.TemporaryDirectory(prefix="conveyor-package-") as tmp:
        root = Path(tmp, "package")  # a fixed name: the stored tar's metadata records it
        files = _write(root, mv, contents)
        stored = project.artifacts.save(root)
    updated = versions.set_package(project.metadata, mv, stored.digest)
    return PackageInfo(
        ref=mv.ref,
        digest=stored.digest,
        size=stored.size,
        files=files,
        golden_rows=len(contents.features),
        predict=contents.predict,
        requirements=contents.requirements,
        version=updated,
    )


def _gather(
    project: Project, mv: ModelVersion, golden: pd.DataFrame | None, golden_rows: int
) -> _Contents:
    from conveyor.checks.model_output import model_output

    store = project.metadata
    run = queries.get_run(store, mv.run_id)
    steps = queries.step_runs(store, run.id)
    info = queries.find_artifact(store, mv.digest)
    if info.materializer != SkopsEstimator.name:
        raise UsageError(
            f"{mv.ref} is a {info.type_name} stored as '{info.materializer}'; a package holds a "
            "scikit-learn model stored with skops",
            hint="register the output of the step that returns the fitted estimator",
        )
    model = project.artifacts.load(info)
    model_bytes = project.artifacts.blobs.get_bytes(mv.digest)
    step = _golden_step(steps, mv)
    params = _golden_params(project, step)
    rows = _evaluation_rows(project, step, mv) if golden is None else golden
    features = _feature_frame(model, rows, params["label"]).head(golden_rows)
    if features.empty:
        raise UsageError(f"{mv.ref}: the golden rows are empty", hint="pass at least one row")
    train_env = next((s.key_parts or {} for s in steps if s.name == mv.step), {}).get("env", {})
    return _Contents(
        run_id=run.id,
        created=mv.created_at or run.started_at,
        model_bytes=model_bytes,
        model_class=str(info.meta.get("class", info.type_name)),
        features=features,
        output=model_output(model, features, params["predict"]),
        predict=params["predict"],
        trusted=sorted(_untrusted_types(model_bytes)),
        train_env=dict(train_env),
        requirements=_requirements(train_env.get("packages") or {}),
        evidence=queries.check_results(store, run.id),
    )


def _write(root: Path, mv: ModelVersion, c: _Contents) -> dict[str, str]:
    """Write the package's files under ``root``; returns their digests (the manifest's too)."""
    (root / "golden").mkdir(parents=True)
    (root / MODEL_FILE).write_bytes(c.model_bytes)
    dtypes = {str(col): str(t) for col, t in c.features.dtypes.items()}
    files = {
        "requirements.txt": "".join(f"{n}=={v}\n" for n, v in sorted(c.requirements.items())),
        "python_env.yaml": _python_env(c.train_env),
        "input_example.json": dumps(jsonable_rows(c.features.head(EXAMPLE_ROWS)), None),
        GOLDEN_INPUTS: dumps({**jsonable_rows(c.features), "dtypes": dtypes}, None),
        GOLDEN_PREDICTIONS: dumps({"method": c.predict, "predictions": c.output.tolist()}, None),
        "evidence.json": dumps({"run_id": c.run_id, "checks": c.evidence}),
        "MLmodel": _mlmodel(mv, c),
    }
    for rel, text in files.items():
        (root / rel).write_text(text, encoding="utf-8")
    digests = {rel: file_digest(root / rel) for rel in sorted([*files, MODEL_FILE])}
    manifest = {
        "format": FORMAT,
        "name": mv.name,
        "version": mv.version,
        "run_id": c.run_id,
        "step": mv.step,
        "output": mv.output,
        "model": {
            "path": MODEL_FILE,
            "digest": mv.digest,
            "class": c.model_class,
            "predict": c.predict,
            "skops_trusted_types": c.trusted,
            "feature_names": [str(col) for col in c.features.columns],
        },
        "golden": {
            "inputs": GOLDEN_INPUTS,
            "predictions": GOLDEN_PREDICTIONS,
            "rows": len(c.features),
        },
        "requirements": "requirements.txt",
        "files": digests,
    }
    (root / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
    return {**digests, MANIFEST: file_digest(root / MANIFEST)}


def _golden_step(steps: Sequence[StepRunRecord], mv: ModelVersion) -> StepRunRecord | None:
    """The run's evaluate_model (else validate_model) step that scored this model."""
    for name in GOLDEN_STEPS:
        for s in steps:
            if s.name == name and s.inputs.get("model") == mv.digest and "data" in s.inputs:
                return s
    return None


def _golden_params(project: Project, step: StepRunRecord | None) -> dict[str, Any]:
    """``label`` and ``predict`` as the evaluation step used them, else from the config."""
    recorded = dict(((step.key_parts or {}).get("params") or {}) if step else {})
    return {
        "label": recorded.get("label") or project.config.checks.model.label,
        "predict": recorded.get("predict") or project.config.model.predict,
    }


def _evaluation_rows(
    project: Project, step: StepRunRecord | None, mv: ModelVersion
) -> pd.DataFrame:
    import pandas as pd

    if step is not None:
        frame = project.artifacts.load(queries.find_artifact(project.metadata, step.inputs["data"]))
        if isinstance(frame, pd.DataFrame):
            return frame
    raise UsageError(
        f"run {mv.run_id} has no evaluate_model or validate_model step that scored {mv.ref} "
        "with a DataFrame, so there are no evaluation rows to take golden predictions from",
        hint="add evaluate_model(model, rows) to the pipeline and register a new run, or pass "
        "the golden rows yourself (a CSV or Parquet file of model inputs)",
    )


def _feature_frame(model: Any, rows: pd.DataFrame, label: str | None) -> pd.DataFrame:
    """The model's input columns of ``rows``: its ``feature_names_in_`` when it has them."""
    wanted = [str(c) for c in getattr(model, "feature_names_in_", [])]
    if wanted:
        missing = [c for c in wanted if c not in rows.columns]
        if missing:
            raise UsageError(
                f"the golden rows lack the model's feature columns {missing[:10]}",
                hint="pass rows with every column the model was trained on",
            )
        return rows[wanted].reset_index(drop=True)
    frame = rows.drop(columns=[label]) if label and label in rows.columns else rows
    return frame.reset_index(drop=True)


def _untrusted_types(data: bytes) -> list[str]:
    """The types of a model file that skops does not trust by default: the manifest's
    ``skops_trusted_types``, what a fresh interpreter (MLflow, the infra check) must pass.

    Imported through ``skops_io``, skops trusts no scikit-learn estimator by default and so
    lists them too; they are dropped, so that the manifest and the package's digest are the
    same whichever way this process imported skops first.
    """
    sio = skops_io()
    untrusted = list(sio.get_untrusted_types(data=data))
    defaults = getattr(getattr(sio, "_trusted_types", None), "SKLEARN_ESTIMATOR_TYPE_NAMES", None)
    if isinstance(defaults, list) and not defaults:
        dropped = _skops_estimator_type_names()
        untrusted = [t for t in untrusted if t not in dropped]
    return untrusted


@functools.cache
def _skops_estimator_type_names() -> frozenset[str]:
    """The scikit-learn estimators skops trusts by default when imported as usual: built, as
    skops builds them, from ``all_estimators()`` (which imports every scikit-learn module)."""
    from sklearn.utils import all_estimators
    from skops.io._utils import get_type_name

    names = (get_type_name(cls) for _, cls in all_estimators())
    return frozenset(n for n in names if n.startswith("sklearn."))


def _requirements(train_packages: Mapping[str, str]) -> dict[str, str]:
    """Exact versions: the base distributions as installed here (they make the golden
    predictions), plus every distribution the training step's code imported."""
    reqs = {str(k): str(v) for k, v in train_packages.items()}
    for name in BASE_REQUIREMENTS:
        installed = md.version(name)
        trained = reqs.get(name)
        if trained is not None and trained != installed:
            raise UsageError(
                f"the model was trained with {name}=={trained}, but this environment has "
                f"{name}=={installed}; its golden predictions would not be the training "
                "environment's",
                hint=f"package it in an environment with {name}=={trained}",
            )
        reqs[name] = installed
    return reqs


def _python_env(train_env: Mapping[str, Any]) -> str:
    import platform

    python = train_env.get("python") or platform.python_version()
    return f"python: {python}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"


def _mlmodel(mv: ModelVersion, c: _Contents) -> str:
    return mlmodel_text(
        mv,
        train_env=c.train_env,
        predict=c.predict,
        trusted=c.trusted,
        created=c.created,
        features=c.features,
        output=c.output,
    )
