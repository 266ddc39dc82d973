"""Opening and reading a release package safely: nothing in it is used before it is verified.

Reading a package verifies every file against ``conveyor.json`` before anything in it is used,
and the model file must be a skops zip: a pickle is refused without ever being unpickled. The
package format's file names are defined here; :mod:`conveyor.registry.package` writes them.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from conveyor.errors import IntegrityError, NotFoundError, TrustError, UsageError
from conveyor.store.blobs import file_digest, is_digest
from conveyor.store.materializers import (
    SAFE_SKOPS_PREFIXES,
    SAFE_SKOPS_TYPES,
    MaterializeContext,
    SkopsEstimator,
)

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

FORMAT = "conveyor.package/1"
MANIFEST = "conveyor.json"
MODEL_FILE = "model.skops"
GOLDEN_INPUTS = "golden/inputs.json"
GOLDEN_PREDICTIONS = "golden/predictions.json"


def is_allowed_type(name: str, extra: Sequence[str] = ()) -> bool:
    """Conveyor's skops allowlist: scikit-learn classes, numpy's dtype, and project-trusted
    types (``trust.skops_types``)."""
    sklearn_class = name.startswith(SAFE_SKOPS_PREFIXES) and name.rpartition(".")[2][:1].isupper()
    return sklearn_class or name in SAFE_SKOPS_TYPES or name in extra


def open_package(
    project: Project, mv_or_digest: ModelVersion | str, dest: Path | None = None
) -> Path:
    """Extract a stored package to ``dest`` (new or empty; a fresh temporary directory by
    default, which the caller removes) and verify it. Returns the directory."""
    return extract_package(project, mv_or_digest, dest).directory


def extract_package(
    project: Project, mv_or_digest: ModelVersion | str, dest: Path | None = None
) -> Package:
    """:func:`open_package`, returning the verified package, so that a caller which uses it at
    once need not read (and hash) every file again."""
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
    return read_package(dest)


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
