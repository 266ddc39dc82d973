"""Infra validation: does the package load in a fresh process and predict what it predicted?

The package is loaded by ``infra_worker.py`` in a new interpreter: this environment's, or a
virtual environment built from the package's ``requirements.txt`` for a chosen Python (built
once per lock and reused: :mod:`conveyor.registry.infra_venv`). The outcome is a list of
:class:`CheckResult` of kind ``infra``, and every failure says which distribution is missing,
which version differs, or which rows disagree. Whether a failure blocks a promotion is the
gate's policy, not this module's.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.checks import CheckResult, Severity
from conveyor.registry.infra_venv import (
    MARKER,
    PIP_TIMEOUT_S,
    BuiltVenv,
    ensure_venv,
    find_python,
    venv_key,
)
from conveyor.registry.mlflow_format import mlflow_type
from conveyor.registry.package_read import Package, open_package, read_package

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

__all__ = [
    "MARKER",
    "PIP_TIMEOUT_S",
    "SHOWN_ROWS",
    "WORKER",
    "WORKER_TIMEOUT_S",
    "BuiltVenv",
    "InfraReport",
    "check_worker",
    "compare_predictions",
    "ensure_venv",
    "find_python",
    "run_worker",
    "validate_directory",
    "validate_package",
    "venv_key",
]

WORKER = Path(__file__).with_name("infra_worker.py")
WORKER_TIMEOUT_S = 600.0
SHOWN_ROWS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class InfraReport:
    """The infra checks of one package, and where they ran."""

    ref: str
    package_digest: str | None
    python: str  # the interpreter that loaded the package
    venv: str | None = None
    reused: bool | None = None  # venv mode: True when an existing venv was reused
    results: tuple[CheckResult, ...] = ()
    worker: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed or r.severity != Severity.ERROR for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "package_digest": self.package_digest,
            "passed": self.passed,
            "python": self.python,
            "venv": self.venv,
            "reused": self.reused,
            "results": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "passed": r.passed,
                    "severity": str(r.severity),
                    "metrics": r.metrics,
                    "message": r.message,
                    "details": r.details,
                }
                for r in self.results
            ],
        }

    def to_text(self) -> str:
        head = f"infra validation of {self.ref}: {'passed' if self.passed else 'FAILED'}"
        where = f"python {self.python}" + (
            f", venv {self.venv} ({'reused' if self.reused else 'built'})" if self.venv else ""
        )
        lines = [head, f"  {where}"]
        for r in self.results:
            mark = "ok  " if r.passed else ("FAIL" if r.severity == Severity.ERROR else "warn")
            lines.append(f"  {mark} {r.name}: {r.message}")
        return "\n".join(lines)


# -- entry points ----------------------------------------------------------------------------


def validate_package(
    project: Project,
    mv: ModelVersion,
    *,
    venv: bool = False,
    python: str | None = None,
    tolerance: float = 1e-9,
) -> InfraReport:
    """Validate the stored package of ``mv`` in a fresh process, or (``venv=True``) in a fresh
    virtual environment built from its requirements for Python ``python`` (default: the
    version it was packaged with), kept under ``.conveyor/venvs/`` and reused. Without
    ``venv``, ``python`` (a version on PATH, or a path) is the interpreter the worker runs in.
    """
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-infra-"))
    try:
        directory = open_package(project, mv, tmp / "package")
        return validate_directory(
            directory,
            venv=venv,
            python=python,
            tolerance=tolerance,
            venvs_dir=project.state_dir / "venvs",
            trusted_types=tuple(project.config.trust.skops_types),
            package_digest=mv.package_digest,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def validate_directory(
    directory: Path,
    *,
    venv: bool = False,
    python: str | None = None,
    tolerance: float = 1e-9,
    venvs_dir: Path | None = None,
    trusted_types: Sequence[str] = (),
    package_digest: str | None = None,
) -> InfraReport:
    """Validate a package directory (see :func:`validate_package`). ``python`` may also be the
    path of an interpreter."""
    package = read_package(directory)
    results: list[CheckResult] = []
    interpreter = find_python(python) if python else sys.executable
    venv_path: Path | None = None
    reused: bool | None = None
    if venv:
        if python is None:
            packaged = str(package.mlmodel["flavors"]["python_function"]["python_version"])
            interpreter = find_python(".".join(packaged.split(".")[:2]))
        root = venvs_dir or Path(tempfile.gettempdir(), "conveyor-venvs")
        built = ensure_venv(root, package, interpreter)
        results.append(built.result)
        if not built.result.passed:
            return InfraReport(
                ref=package.ref,
                package_digest=package_digest,
                python=interpreter,
                venv=str(built.path),
                reused=False,
                results=tuple(results),
            )
        venv_path, reused, interpreter = built.path, built.reused, str(built.python)
    worker = run_worker(interpreter, package.directory, trusted_types)
    results += check_worker(package, worker, tolerance)
    return InfraReport(
        ref=package.ref,
        package_digest=package_digest,
        python=f"{interpreter} ({worker.get('python', '?')})",
        venv=str(venv_path) if venv_path else None,
        reused=reused,
        results=tuple(results),
        worker={k: v for k, v in worker.items() if k != "predictions"},
    )


# -- the worker and its checks ---------------------------------------------------------------


def run_worker(interpreter: str, directory: Path, trusted_types: Sequence[str]) -> dict[str, Any]:
    """Run infra_worker.py in a new ``interpreter`` (isolated: no PYTHONPATH, no user site)."""
    argv = [interpreter, "-I", str(WORKER), str(directory)]
    for t in trusted_types:
        argv += ["--trust", t]
    with tempfile.TemporaryDirectory(prefix="conveyor-worker-") as cwd:
        try:
            proc = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": {"kind": "timeout", "message": "no answer"}}
    lines = proc.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if not report:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        report = {
            "ok": False,
            "error": {"kind": "crash", "message": f"exit code {proc.returncode}: {tail}"},
        }
    return report


def check_worker(package: Package, worker: dict[str, Any], tolerance: float) -> list[CheckResult]:
    results = [_environment(package, worker), _load(package, worker)]
    if worker.get("ok"):
        results.append(_signature(package, worker))
        results.append(compare_predictions(package.golden_predictions(), worker, tolerance))
    return results


def _environment(package: Package, worker: dict[str, Any]) -> CheckResult:
    pinned = package.requirements()
    installed: dict[str, str | None] = worker.get("versions") or {}
    diffs = [
        {"distribution": name, "pinned": version, "installed": installed.get(name)}
        for name, version in sorted(pinned.items())
        if installed.get(name) != version
    ]
    said = [
        f"{d['distribution']}: requirements.txt pins {d['pinned']}, "
        + (f"the environment has {d['installed']}" if d["installed"] else "it is not installed")
        for d in diffs
    ]
    return CheckResult(
        name="infra:environment",
        kind="infra",
        passed=not diffs,
        metrics={"distributions": float(len(pinned)), "differences": float(len(diffs))},
        message="; ".join(said) or f"all {len(pinned)} pinned distributions match",
        details={"differences": diffs, "python": worker.get("python")},
    )


def _load(package: Package, worker: dict[str, Any]) -> CheckResult:
    timings: tuple[str, ...] = ("import_s", "load_s", "predict_s", "peak_rss_mb")
    metrics = {k: float(worker[k]) for k in timings if k in worker}
    if worker.get("ok"):
        return CheckResult(
            name="infra:load",
            kind="infra",
            passed=True,
            metrics=metrics,
            message=f"loaded in {worker['load_s']:.3f} s in a fresh process (imports "
            f"{worker['import_s']:.2f} s); peak memory {worker['peak_rss_mb']:.0f} MB",
        )
    error = worker.get("error") or {}
    if error.get("kind") == "missing":
        dist = error.get("distribution", "?")
        pin = package.requirements().get(dist)
        message = f"{dist} is not installed in the environment" + (
            f" (requirements.txt pins {dist}=={pin})" if pin else " (and requirements.txt lacks it)"
        )
    else:
        message = f"the package did not load ({worker.get('stage', '?')}): {error.get('message')}"
    return CheckResult(
        name="infra:load",
        kind="infra",
        passed=False,
        metrics=metrics,
        message=message,
        details={"error": error, "stage": worker.get("stage")},
    )


def _signature(package: Package, worker: dict[str, Any]) -> CheckResult:
    """The model's own feature names, the manifest's and the MLmodel signature agree, and the
    golden inputs have the signature's column types."""
    problems: list[str] = []
    declared = json.loads(package.mlmodel.get("signature", {}).get("inputs") or "[]")
    sig = [(c["name"], c["type"]) for c in declared]
    model_names = worker.get("feature_names") or []
    if model_names and model_names != [n for n, _ in sig]:
        problems.append(f"the model's columns {model_names} are not the signature's")
    golden = package.golden_inputs()
    got = [(str(c), mlflow_type(t, str(c))) for c, t in golden.dtypes.items()]
    if got != sig:
        problems.append(f"the golden inputs have columns {got}, the signature {sig}")
    return CheckResult(
        name="infra:signature",
        kind="infra",
        passed=not problems,
        metrics={"columns": float(len(sig))},
        message="; ".join(problems) or f"the signature's {len(sig)} columns match the model",
        details={"signature": [{"name": n, "type": t} for n, t in sig]},
    )


def _is_score(value: Any) -> bool:
    if isinstance(value, list):
        return any(_is_score(v) for v in value)
    return isinstance(value, float)


def _differs(expected: Any, got: Any, tolerance: float, scores: bool) -> bool:
    if isinstance(expected, list) or isinstance(got, list):
        if not (isinstance(expected, list) and isinstance(got, list)) or len(expected) != len(got):
            return True
        return any(_differs(e, g, tolerance, scores) for e, g in zip(expected, got, strict=True))
    if scores and isinstance(expected, int | float) and isinstance(got, int | float):
        if math.isnan(expected) or math.isnan(got):
            return not (math.isnan(expected) and math.isnan(got))
        return abs(expected - got) > tolerance
    return bool(expected != got)


def _max_abs_diff(expected: Any, got: Any) -> float:
    if isinstance(expected, list) and isinstance(got, list):
        return max((_max_abs_diff(e, g) for e, g in zip(expected, got, strict=False)), default=0.0)
    if isinstance(expected, int | float) and isinstance(got, int | float):
        diff = abs(expected - got)
        return 0.0 if math.isnan(diff) else float(diff)
    return 0.0


def compare_predictions(
    expected: list[Any], worker: dict[str, Any], tolerance: float
) -> CheckResult:
    """Golden predictions against the fresh process's: scores within ``tolerance`` absolute,
    labels exactly. The message names the rows that disagree."""
    got: list[Any] = list(worker.get("predictions") or [])
    scores = _is_score(expected)
    if len(got) != len(expected):
        return CheckResult(
            name="infra:golden",
            kind="infra",
            passed=False,
            message=f"expected {len(expected)} golden predictions, the package gave {len(got)}",
        )
    bad = [
        i
        for i, (e, g) in enumerate(zip(expected, got, strict=True))
        if _differs(e, g, tolerance, scores)
    ]
    rows = [{"row": i, "expected": expected[i], "got": got[i]} for i in bad[:SHOWN_ROWS]]
    shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
    first = (
        f"; row {rows[0]['row']}: expected {rows[0]['expected']}, got {rows[0]['got']}"
        if rows
        else ""
    )
    rule = f"within {tolerance:g}" if scores else "exactly"
    return CheckResult(
        name="infra:golden",
        kind="infra",
        passed=not bad,
        metrics={
            "rows": float(len(expected)),
            "rows_disagreeing": float(len(bad)),
            "max_abs_diff": _max_abs_diff(expected, got) if scores else 0.0,
        },
        message=(
            f"{len(bad)} of {len(expected)} golden rows disagree ({rule}): rows {shown}{first}"
            if bad
            else f"all {len(expected)} golden predictions reproduced ({rule})"
        ),
        details={"tolerance": tolerance, "scores": scores, "rows": rows},
    )
