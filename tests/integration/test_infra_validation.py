"""Infra validation: the package loads in a fresh process (or a fresh venv built from its
requirements) and reproduces its golden predictions; every failure says what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration.test_package import TRUSTED, make_packaged, redigest


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Path]:
    return make_packaged(tmp_path_factory.mktemp("infra") / "proj")


def by_name(report: Any) -> dict[str, Any]:
    return {r.name: r for r in report.results}


def copy_of(directory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(directory, tmp_path / "copy"))


def test_a_good_package_passes_in_a_fresh_process(packaged) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.infra import validate_package

    root, mv, _directory = packaged
    with open_project(root, environ={}) as project:
        report = validate_package(project, mv)
    assert report.passed, report.to_text()
    results = by_name(report)
    assert list(results) == ["infra:environment", "infra:load", "infra:signature", "infra:golden"]
    assert all(r.kind == "infra" and r.passed for r in report.results)
    assert report.worker["pid"] != os.getpid()
    load = results["infra:load"].metrics
    assert load["load_s"] > 0 and load["peak_rss_mb"] > 10
    assert results["infra:golden"].metrics["rows_disagreeing"] == 0
    assert results["infra:golden"].metrics["rows"] == 200
    as_json = report.to_json()
    assert as_json["passed"] is True and as_json["package_digest"] == mv.package_digest
    assert json.loads(json.dumps(as_json)) == as_json
    assert "infra:golden: all 200 golden predictions reproduced" in report.to_text()


def test_altered_golden_predictions_fail_naming_the_rows(packaged, tmp_path: Path) -> None:
    from conveyor.registry.infra import validate_directory

    copy = copy_of(packaged[2], tmp_path)
    path = copy / "golden" / "predictions.json"
    golden = json.loads(path.read_text())
    original = [list(row) for row in golden["predictions"]]
    for i in (3, 17):
        golden["predictions"][i][1] += 1e-6
    path.write_text(json.dumps(golden))
    redigest(copy)
    report = validate_directory(copy, trusted_types=TRUSTED)
    golden_check = by_name(report)["infra:golden"]
    assert not report.passed and not golden_check.passed
    assert "2 of 200 golden rows disagree (within 1e-09): rows 3, 17" in golden_check.message
    assert [r["row"] for r in golden_check.details["rows"]] == [3, 17]
    assert golden_check.details["rows"][0]["got"] == original[3]
    assert golden_check.metrics["max_abs_diff"] == pytest.approx(1e-6, rel=1e-3)
    # The tolerance is the caller's: a looser one accepts the same package.
    assert validate_directory(copy, trusted_types=TRUSTED, tolerance=1e-5).passed


def test_a_version_that_differs_from_the_lock_is_named(packaged, tmp_path: Path) -> None:
    from importlib.metadata import version

    from conveyor.registry.infra import validate_directory

    copy = copy_of(packaged[2], tmp_path)
    reqs = (copy / "requirements.txt").read_text()
    sklearn = version("scikit-learn")
    reqs = reqs.replace(f"scikit-learn=={sklearn}", "scikit-learn==1.0.2")
    (copy / "requirements.txt").write_text(reqs + "conveyor-no-such-dist==1.0\n")
    redigest(copy)
    report = validate_directory(copy, trusted_types=TRUSTED)
    env = by_name(report)["infra:environment"]
    assert not env.passed and not report.passed
    assert (
        f"scikit-learn: requirements.txt pins 1.0.2, the environment has {sklearn}" in env.message
    )
    assert "conveyor-no-such-dist: requirements.txt pins 1.0, it is not installed" in env.message
    assert {d["distribution"] for d in env.details["differences"]} == {
        "scikit-learn",
        "conveyor-no-such-dist",
    }
    # The model itself still loads and reproduces its predictions here.
    assert by_name(report)["infra:golden"].passed


def test_a_missing_distribution_is_named(packaged, tmp_path: Path) -> None:
    from conveyor.registry.infra import validate_directory

    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    report = validate_directory(packaged[2], python=str(python), trusted_types=TRUSTED)
    results = by_name(report)
    from importlib.metadata import version

    assert not report.passed
    assert results["infra:load"].message == (
        f"numpy is not installed in the environment (requirements.txt pins "
        f"numpy=={version('numpy')})"
    )
    assert "scikit-learn: requirements.txt pins" in results["infra:environment"].message
    assert "infra:golden" not in results


def test_a_type_the_manifest_does_not_declare_is_not_trusted(packaged, tmp_path: Path) -> None:
    from conveyor.registry.infra import validate_directory

    copy = copy_of(packaged[2], tmp_path)
    manifest = json.loads((copy / "conveyor.json").read_text())
    manifest["model"]["skops_trusted_types"] = []
    (copy / "conveyor.json").write_text(json.dumps(manifest))
    report = validate_directory(copy)
    load = by_name(report)["infra:load"]
    assert not load.passed
    assert f"the model uses types that are not trusted: {TRUSTED[0]}" in load.message


def test_a_venv_left_without_its_marker_is_rebuilt_then_reused(tmp_path: Path) -> None:
    """A build that was killed leaves no marker: the next call builds afresh; the one after
    reuses it. (Empty requirements, so no download is needed.)"""
    from conveyor.registry.infra import MARKER, ensure_venv, venv_key
    from conveyor.registry.package import Package

    directory = tmp_path / "pkg"
    directory.mkdir()
    (directory / "requirements.txt").write_text("")
    package = Package(directory=directory, manifest={"requirements": "requirements.txt"})
    import platform

    killed = tmp_path / "venvs" / venv_key("", platform.python_version())
    killed.mkdir(parents=True)
    (killed / "half-written").write_text("")
    first = ensure_venv(tmp_path / "venvs", package, sys.executable)
    assert first.path == killed and not first.reused and first.result.passed
    assert not (killed / "half-written").exists() and (killed / MARKER).is_file()
    stat = (killed / MARKER).stat()
    second = ensure_venv(tmp_path / "venvs", package, sys.executable)
    assert second.reused and second.result.details["reused"] is True
    assert (killed / MARKER).stat().st_ino == stat.st_ino
    assert (killed / MARKER).stat().st_mtime_ns == stat.st_mtime_ns


def test_an_unknown_python_version_is_a_usage_error(packaged) -> None:
    from conveyor.errors import UsageError
    from conveyor.registry.infra import validate_directory

    with pytest.raises(UsageError, match=r"no python2\.1 on PATH"):
        validate_directory(packaged[2], venv=True, python="2.1")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_fresh_venv_from_the_requirements_is_built_once_and_reused(packaged) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.infra import MARKER, validate_package

    reachable = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "scikit-learn"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if reachable.returncode != 0:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PyPI is not reachable, and CI=true requires the venv test")
        pytest.skip("PyPI is not reachable: cannot build a venv from the requirements")
    root, mv, _directory = packaged
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    with open_project(root, environ={}) as project:
        first = validate_package(project, mv, venv=True, python=python)
        assert first.passed, first.to_text()
        assert first.reused is False
        built = by_name(first)["infra:venv"]
        assert built.metrics["build_s"] > 0
        venv = Path(first.venv or "")
        assert venv.parent == root / ".conveyor" / "venvs"
        assert first.python.startswith(str(venv))
        marker = (venv / MARKER).stat()
        second = validate_package(project, mv, venv=True, python=python)
    assert second.passed and second.reused is True and second.venv == first.venv
    assert (venv / MARKER).stat().st_ino == marker.st_ino
    assert (venv / MARKER).stat().st_mtime_ns == marker.st_mtime_ns
    assert by_name(second)["infra:golden"].metrics["rows_disagreeing"] == 0
    print(f"venv build: {built.metrics['build_s']:.1f} s")
