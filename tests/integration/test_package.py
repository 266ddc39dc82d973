"""The release package: what is in it, that it is deterministic, and that reading it refuses a
tampered file, a path that leaves the package, and a pickle posing as the model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.package_support import (  # other test modules import them from here
    PIPELINE,
    TRUSTED,
    make_packaged,
    make_registered,
    redigest,
)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Path]:
    return make_packaged(tmp_path_factory.mktemp("package") / "proj")


def copy_of(directory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(directory, tmp_path / "copy"))


def test_package_holds_the_documented_files(packaged) -> None:
    _root, mv, directory = packaged
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    assert files == [
        "MLmodel",
        "conveyor.json",
        "evidence.json",
        "golden/inputs.json",
        "golden/predictions.json",
        "input_example.json",
        "model.skops",
        "python_env.yaml",
        "requirements.txt",
    ]
    # The model file is the registered artifact's bytes, not a re-serialization.
    assert hashlib.sha256((directory / "model.skops").read_bytes()).hexdigest() == mv.digest
    manifest = json.loads((directory / "conveyor.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["run_id"]) == ("pk", 1, mv.run_id)
    assert manifest["model"]["digest"] == mv.digest
    assert manifest["model"]["skops_trusted_types"] == TRUSTED
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((directory / rel).read_bytes()).hexdigest() == digest


def test_mlmodel_uses_mlflow_fields_and_the_models_columns(packaged) -> None:
    from importlib.metadata import version

    _root, mv, directory = packaged
    mlmodel = yaml.safe_load((directory / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "conveyor.registry.pyfunc"
    assert pyfunc["model_path"] == "model.skops"
    assert pyfunc["predict_fn"] == "predict_proba"
    sk = mlmodel["flavors"]["sklearn"]
    assert sk["serialization_format"] == "skops"
    assert sk["sklearn_version"] == version("scikit-learn")
    assert sk["skops_trusted_types"] == TRUSTED
    # The creation time is the version's, so packaging again gives the same bytes.
    assert mlmodel["utc_time_created"] == mv.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    inputs = json.loads(mlmodel["signature"]["inputs"])
    # Only the model's features (not the 'region' slice or the label), with MLflow's types.
    assert [(c["name"], c["type"]) for c in inputs] == [
        ("a", "double"),
        ("b", "double"),
        ("k", "long"),
    ]
    outputs = json.loads(mlmodel["signature"]["outputs"])
    assert outputs == [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]
    example = json.loads((directory / "input_example.json").read_text())
    assert example["columns"] == ["a", "b", "k"] and len(example["data"]) == 5


def test_requirements_and_evidence(packaged) -> None:
    from importlib.metadata import version

    from conveyor.engine.project import open_project
    from conveyor.store import queries

    root, mv, directory = packaged
    lines = (directory / "requirements.txt").read_text().splitlines()
    for dist in ("numpy", "pandas", "scikit-learn", "scipy", "skops"):
        assert f"{dist}=={version(dist)}" in lines
    assert lines == sorted(lines)
    evidence = json.loads((directory / "evidence.json").read_text())
    with open_project(root, environ={}) as project:
        assert evidence["checks"] == queries.check_results(project.metadata, mv.run_id)
    assert any(c["name"] == "threshold:roc_auc" and c["passed"] for c in evidence["checks"])


def test_golden_predictions_are_the_models_predictions(packaged) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.package import read_package
    from conveyor.store import queries

    root, mv, directory = packaged
    package = read_package(directory)
    inputs = package.golden_inputs()
    assert list(inputs.columns) == ["a", "b", "k"] and len(inputs) == 200
    assert str(inputs["k"].dtype) == "int64"
    with open_project(root, environ={}) as project:
        model = project.artifacts.load(queries.find_artifact(project.metadata, mv.digest))
        test_rows = project.artifacts.load(
            queries.find_artifact(
                project.metadata,
                next(
                    s
                    for s in queries.step_runs(project.metadata, mv.run_id)
                    if s.name == "evaluate_model"
                ).inputs["data"],
            )
        )
    assert inputs.equals(test_rows[["a", "b", "k"]].head(200))
    assert package.golden_predictions() == model.predict_proba(inputs).tolist()


def test_packaging_twice_gives_the_same_digest_in_another_process(packaged) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import get_version

    root, mv, _directory = packaged
    with open_project(root, environ={}) as project:
        again = build_package(project, get_version(project.metadata, "pk", 1))
    assert again.digest == mv.package_digest
    script = (
        "from pathlib import Path\n"
        "from conveyor.engine.project import open_project\n"
        "from conveyor.registry.package import build_package\n"
        "from conveyor.registry.versions import get_version\n"
        f"with open_project(Path({str(root)!r}), environ={{}}) as p:\n"
        "    print(build_package(p, get_version(p.metadata, 'pk', 1)).digest)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == mv.package_digest


def test_pyfunc_loader_predicts_with_the_packages_method(packaged) -> None:
    from conveyor.registry.package import read_package
    from conveyor.registry.pyfunc import _load_pyfunc

    _root, _mv, directory = packaged
    package = read_package(directory)
    model = _load_pyfunc(directory / "model.skops", trusted_types=TRUSTED)
    assert model.predict(package.golden_inputs()).tolist() == package.golden_predictions()


def test_a_changed_byte_is_refused_naming_the_file(packaged, tmp_path: Path) -> None:
    from conveyor.errors import IntegrityError
    from conveyor.registry.package import read_package

    for rel in ("golden/predictions.json", "model.skops"):
        copy = copy_of(packaged[2], tmp_path / rel.replace("/", "_"))
        data = bytearray((copy / rel).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / rel).write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=f"'{rel}' does not match its digest"):
            read_package(copy)


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/hostname", "link.txt", "sub/../../x"])
def test_a_manifest_path_leaving_the_package_is_refused(packaged, tmp_path: Path, path) -> None:
    from conveyor.errors import IntegrityError
    from conveyor.registry.package import read_package

    copy = copy_of(packaged[2], tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (copy / "link.txt").symlink_to(outside)
    manifest = json.loads((copy / "conveyor.json").read_text())
    manifest["files"][path] = hashlib.sha256(b"secret").hexdigest()
    (copy / "conveyor.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="leaves the package|points outside"):
        read_package(copy)


def test_an_unlisted_file_is_refused(packaged, tmp_path: Path) -> None:
    from conveyor.errors import IntegrityError
    from conveyor.registry.package import read_package

    copy = copy_of(packaged[2], tmp_path)
    (copy / "golden" / "extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match=r"'golden/extra.py' is not listed"):
        read_package(copy)


class Payload:
    """A pickle that creates a file when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_posing_as_the_model_is_refused_without_running(packaged, tmp_path: Path) -> None:
    from conveyor.errors import TrustError
    from conveyor.registry.infra import validate_directory
    from conveyor.registry.package import read_package
    from conveyor.registry.pyfunc import _load_pyfunc

    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))  # the payload does run when unpickled
    assert control.exists()

    marker = tmp_path / "pwned"
    copy = copy_of(packaged[2], tmp_path)
    (copy / "model.skops").write_bytes(pickle.dumps(Payload(marker)))
    redigest(copy)  # the digests agree: only the format check stands in the way
    for attempt in (
        lambda: read_package(copy),
        lambda: _load_pyfunc(copy / "model.skops"),
        lambda: validate_directory(copy),
    ):
        with pytest.raises(TrustError, match="'model.skops' is not a skops file .*a pickle"):
            attempt()
    assert not marker.exists()


def test_a_run_without_evaluation_rows_is_refused_with_a_way_out(tmp_path: Path) -> None:
    import pandas as pd

    from conveyor.engine.project import open_project
    from conveyor.errors import UsageError
    from conveyor.registry.package import build_package, read_package

    no_eval = PIPELINE.replace("    evaluate_model(model, te, bootstrap=50)\n", "").replace(
        "    validate_model(model, te)\n", ""
    )
    root, mv = make_registered(tmp_path / "proj", no_eval)
    with open_project(root, environ={}) as project:
        with pytest.raises(UsageError, match="no evaluate_model or validate_model step") as err:
            build_package(project, mv)
        assert "evaluate_model(model, rows)" in (err.value.hint or "")
        rows = pd.DataFrame({"a": [0.1, -1.0], "b": [0.0, 2.0], "k": [1, 4], "label": [1, 0]})
        info = build_package(project, mv, golden=rows)
        from conveyor.registry.package import open_package

        package = read_package(open_package(project, info.version, tmp_path / "opened"))
    assert package.golden_inputs().equals(rows[["a", "b", "k"]])


def test_open_package_needs_a_built_package_and_an_empty_destination(packaged, tmp_path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.errors import NotFoundError, UsageError
    from conveyor.registry.package import open_package

    root, mv, _directory = packaged
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with open_project(root, environ={}) as project:
        with pytest.raises(UsageError, match="is not empty"):
            open_package(project, mv, busy)
        with pytest.raises(NotFoundError, match="has no package yet"):
            open_package(project, dataclasses.replace(mv, package_digest=None))
        opened = open_package(project, mv.package_digest, tmp_path / "by-digest")
    assert (opened / "conveyor.json").is_file()


def test_extract_package_returns_what_reading_the_directory_gives(packaged, tmp_path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.package import extract_package, read_package

    root, mv, _directory = packaged
    with open_project(root, environ={}) as project:
        package = extract_package(project, mv, tmp_path / "extracted")
    assert package.directory == tmp_path / "extracted"
    assert package == read_package(tmp_path / "extracted")
    assert package.ref == mv.ref
