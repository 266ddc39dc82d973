"""`conveyor model package|validate|export` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import conveyor
from integration.test_package import make_registered


def test_package_validate_and_refuse_unpackaged(tmp_path: Path) -> None:
    root, mv = make_registered(tmp_path / "proj")
    refused = conveyor("model", "validate", mv.ref, cwd=root)
    assert refused.returncode == 2 and "has no package yet" in refused.stderr

    packaged = json.loads(
        conveyor("model", "package", mv.ref, "--json", cwd=root, check=True).stdout
    )
    assert len(packaged["digest"]) == 64
    again = json.loads(conveyor("model", "package", mv.ref, "--json", cwd=root).stdout)
    assert again["digest"] == packaged["digest"]
    shown = json.loads(conveyor("model", "show", mv.ref, "--json", cwd=root).stdout)
    assert shown["package_digest"] == packaged["digest"]

    report = conveyor("model", "validate", mv.ref, "--json", cwd=root)
    assert report.returncode == 0, report.stdout + report.stderr
    data = json.loads(report.stdout)
    assert data["passed"] is True

    onnx = json.loads(conveyor("model", "validate", mv.ref, "--onnx", "--json", cwd=root).stdout)
    assert onnx["onnx"]["passed"] is True and len(onnx["onnx"]["digest"]) == 64
    assert {r["name"] for r in onnx["onnx"]["results"]} >= {"onnx:golden", "onnx:sample"}

    out = tmp_path / "mlflow-model"
    conveyor("model", "export", mv.ref, "-o", str(out), cwd=root, check=True)
    assert (out / "MLmodel").is_file()
    busy = conveyor("model", "export", mv.ref, "-o", str(out), cwd=root)
    assert busy.returncode == 2
