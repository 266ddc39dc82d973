"""The release package of a model version: build it, store it, open it, and read it safely.

A package is a directory (see docs/package.md) stored as one deterministic tar, so it is
addressed by its digest and packaging the same version twice gives the same digest. Reading a
package verifies every file against ``conveyor.json`` before anything in it is used, and the
model file must be a skops zip: a pickle is refused without ever being unpickled.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as md
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from conveyor.errors import IntegrityError, NotFoundError, TrustError, UsageError
from conveyor.registry import versions
from conveyor.store import queries
from conveyor.store.blobs import file_digest, is_digest
from conveyor.store.materializers import (
    SAFE_SKOPS_PREFIXES,
    SAFE_SKOPS_TYPES,
    MaterializeContext,
    SkopsEstimator,
)

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.core.records import StepRunRecord
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

FORMAT = "conveyor.package/1"
MANIFEST = "conveyor.json"
MODEL_FILE = "model.skops"
GOLDEN_INPUTS = "golden/inputs.json"
GOLDEN_PREDICTIONS = "golden/predictions.json"
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


def is_allowed_type(name: str, extra: Sequence[str] = ()) -> bool:
    """Conveyor's skops allowlist: scikit-learn classes, numpy's dtype, and project-trusted
    types (``trust.skops_types``)."""
    sklearn_class = name.startswith(SAFE_SKOPS_PREFIXES) and name.rpartition(".")[2][:1].isupper()
    return sklearn_class or name in SAFE_SKOPS_TYPES or name in extra


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
    import skops.io as sio

    return list(sio.get_untrusted_types(data=data))


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
    import platform

    import sklearn
    import yaml

    python = c.train_env.get("python") or platform.python_version()
    doc = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "loader_module": "conveyor.registry.pyfunc",
                "model_path": MODEL_FILE,
                "predict_fn": c.predict,
                "python_version": python,
                "env": {"virtualenv": "python_env.yaml"},
            },
            "sklearn": {
                "pickled_model": MODEL_FILE,
                "serialization_format": "skops",
                "skops_trusted_types": c.trusted,
                "sklearn_version": sklearn.__version__,
                "code": None,
            },
        },
        "model_uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"conveyor:{mv.ref}:{mv.digest}").hex,
        "utc_time_created": c.created.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "signature": infer_signature(c.features, c.output),
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
        },
        "metadata": {"conveyor": {"name": mv.name, "version": mv.version, "run_id": mv.run_id}},
    }
    text: str = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    return text


# -- signature and rows, in MLflow's terms ---------------------------------------------------


def mlflow_type(dtype: Any, column: str) -> str:
    """MLflow's column type for a pandas dtype."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        wide = getattr(dtype, "itemsize", 8) >= 8 or str(dtype).lower() == "uint32"
        return "long" if wide else "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "double" if getattr(dtype, "itemsize", 8) >= 8 else "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise UsageError(
        f"column '{column}' has dtype {dtype}, which has no MLflow signature type",
        hint="give the model numeric, boolean, string or datetime columns",
    )


def infer_signature(features: pd.DataFrame, output: Any) -> dict[str, Any]:
    """MLflow's signature: one column spec per feature, and the output as a tensor spec."""
    inputs = [
        {"type": mlflow_type(dtype, str(name)), "name": str(name), "required": True}
        for name, dtype in features.dtypes.items()
    ]
    if output.dtype.kind in "biuf":
        shape = [-1, *output.shape[1:]]
        outputs: list[dict[str, Any]] = [
            {"type": "tensor", "tensor-spec": {"dtype": str(output.dtype), "shape": shape}}
        ]
    else:
        outputs = [{"type": "string", "required": True}]
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "params": None,
    }


def jsonable_rows(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"columns", "data"}`` (pandas' split orient, as MLflow writes input examples) with
    plain Python values, so floats read back bit for bit."""
    import pandas as pd

    def plain(v: Any) -> Any:
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        return None if v is pd.NA or v is pd.NaT else v

    rows = frame.astype(object).to_numpy().tolist()
    return {
        "columns": [str(c) for c in frame.columns],
        "data": [[plain(v) for v in r] for r in rows],
    }


# -- opening and reading ---------------------------------------------------------------------


def open_package(
    project: Project, mv_or_digest: ModelVersion | str, dest: Path | None = None
) -> Path:
    """Extract a stored package to ``dest`` (new or empty; a fresh temporary directory by
    default, which the caller removes) and verify it. Returns the directory."""
    if isinstance(mv_or_digest, str):
        digest = mv_or_digest
        if not is_digest(digest):
            raise UsageError(f"'{digest}' is not a package digest", hint="give all 64 hex digits")
    else:
        if mv_or_digest.package_digest is None:
            raise NotFoundError(
                f"{mv_or_digest.ref} has no package yet",
                hint=f"build it with 'conveyor model package {mv_or_digest.ref}'",
            )
        digest = mv_or_digest.package_digest
    if dest is None:
        dest = Path(tempfile.mkdtemp(prefix="conveyor-package-"))
    elif dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty", hint="give a new or empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = project.artifacts.blobs.local_path(digest)  # verified against the digest
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()):
                raise IntegrityError(
                    f"package {digest[:12]} holds '{member.name}', which is not a plain file"
                )
        tar.extractall(dest, filter="data")
    read_package(dest)
    return dest


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """A package directory whose every file matched ``conveyor.json`` when it was read."""

    directory: Path
    manifest: dict[str, Any]
    mlmodel: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.manifest['name']}:{self.manifest['version']}"

    @property
    def predict(self) -> str:
        return str(self.manifest["model"]["predict"])

    @property
    def model_path(self) -> Path:
        return self.directory / str(self.manifest["model"]["path"])

    def requirements(self) -> dict[str, str]:
        return parse_requirements((self.directory / self.manifest["requirements"]).read_text())

    def golden_inputs(self) -> pd.DataFrame:
        return frame_from_split(json.loads((self.directory / GOLDEN_INPUTS).read_text()))

    def golden_predictions(self) -> list[Any]:
        data = json.loads((self.directory / GOLDEN_PREDICTIONS).read_text())
        return list(data["predictions"])

    def load_model(self, trusted_types: Sequence[str] = ()) -> Any:
        """The model, loaded with skops under Conveyor's allowlist (plus ``trusted_types``)."""
        ctx = MaterializeContext(skops_types=tuple(trusted_types))
        return SkopsEstimator().load(self.model_path, {}, ctx)


def parse_requirements(text: str) -> dict[str, str]:
    reqs: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if name and not name.startswith("#") and sep:
            reqs[name.strip()] = version.strip()
    return reqs


def frame_from_split(doc: Mapping[str, Any]) -> pd.DataFrame:
    """A DataFrame from ``{"columns", "data", "dtypes"}`` with the recorded dtypes."""
    import pandas as pd

    frame = pd.DataFrame(doc["data"], columns=doc["columns"])
    for column, dtype in (doc.get("dtypes") or {}).items():
        if str(dtype).startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], format="ISO8601").astype(dtype)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


def _safe_relative(root: Path, rel: str, where: str) -> Path:
    """``root/rel`` when ``rel`` is a plain relative path that stays inside ``root``."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or rel.startswith("~"):
        raise IntegrityError(
            f"{where}: path '{rel}' is absolute or leaves the package",
            hint="a package's paths are plain relative file names; rebuild the package",
        )
    path = root / pure
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise IntegrityError(
            f"{where}: '{rel}' points outside the package",
            hint="a package holds no links; rebuild the package",
        )
    return path


def read_package(directory: Path) -> Package:
    """Verify a package directory and return it: every file listed in ``conveyor.json`` has its
    digest, no other file or link is present, and the model file is a skops zip."""
    root = Path(directory)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise NotFoundError(
            f"{root} is not a package: it has no {MANIFEST}",
            hint="build one with 'conveyor model package NAME:VERSION'",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed: dict[str, str] = dict(manifest["files"])
        model_rel = str(manifest["model"]["path"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{manifest_path} is not a package manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise UsageError(
            f"{manifest_path}: format {manifest.get('format')!r} is not {FORMAT!r}",
            hint="this package was written by another version of Conveyor",
        )
    for rel, expected in sorted(listed.items()):
        path = _safe_relative(root, rel, f"{MANIFEST} files")
        if not path.is_file():
            raise IntegrityError(f"package file '{rel}' is missing from {root}")
        if file_digest(path) != expected:
            raise IntegrityError(
                f"package file '{rel}' does not match its digest in {MANIFEST}: it was changed "
                "after the package was built",
                hint="open the stored package again, or rebuild it",
            )
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise IntegrityError(f"package holds a link '{rel}'", hint="a package holds no links")
        if path.is_file() and rel != MANIFEST and rel not in listed:
            raise IntegrityError(
                f"package file '{rel}' is not listed in {MANIFEST}",
                hint="a package is immutable; remove the file or rebuild the package",
            )
    if model_rel not in listed:
        raise IntegrityError(f"the model file '{model_rel}' is not listed in {MANIFEST}")
    if listed[model_rel] != manifest["model"].get("digest"):
        raise IntegrityError(f"the model file '{model_rel}' is not the registered model artifact")
    mlmodel = _read_mlmodel(root, listed)
    _check_skops(_safe_relative(root, model_rel, f"{MANIFEST} model.path"), model_rel)
    return Package(directory=root, manifest=manifest, mlmodel=mlmodel)


def _read_mlmodel(root: Path, listed: Mapping[str, str]) -> dict[str, Any]:
    if "MLmodel" not in listed:
        return {}
    import yaml

    doc = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8")) or {}
    flavors = doc.get("flavors") or {}
    paths = [
        (
            "flavors.python_function.model_path",
            flavors.get("python_function", {}).get("model_path"),
        ),
        ("flavors.sklearn.pickled_model", flavors.get("sklearn", {}).get("pickled_model")),
        (
            "saved_input_example_info.artifact_path",
            (doc.get("saved_input_example_info") or {}).get("artifact_path"),
        ),
    ]
    for where, rel in paths:
        if rel is not None:
            _safe_relative(root, str(rel), f"MLmodel {where}")
    return dict(doc)


def _check_skops(path: Path, rel: str) -> None:
    """Refuse a model file that is not a skops zip, by its bytes: nothing is unpickled."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path):
        what = "a pickle" if head[:1] == b"\x80" else f"bytes {head.hex()}"
        raise TrustError(
            f"package file '{rel}' is not a skops file (it starts like {what}); it was not loaded",
            hint="a package's model is a skops zip; never load a model file you did not build",
        )
    try:
        with zipfile.ZipFile(path) as z:
            schema = json.loads(z.read("schema.json"))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise TrustError(f"package file '{rel}' is not a skops file: {exc}") from None
    if not isinstance(schema, dict) or "__class__" not in schema:
        raise TrustError(f"package file '{rel}' is not a skops file: no class in schema.json")
