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


def test_serving_with_the_proven_onnx_file(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from integration.test_package import make_packaged

    root, mv, package_dir = make_packaged(tmp_path / "proj")
    refused = conveyor("serve", mv.ref, "--onnx", cwd=root)
    assert refused.returncode == 2 and "validate" in refused.stderr and "--onnx" in refused.stderr
    proved = conveyor("model", "validate", mv.ref, "--onnx", "--json", cwd=root, check=True)
    assert json.loads(proved.stdout)["onnx"]["passed"] is True

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "serve",
            mv.ref,
            "--onnx",
            "--port",
            str(port),
            "--no-log",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        golden = json.loads((package_dir / "golden" / "inputs.json").read_text())
        expected = json.loads((package_dir / "golden" / "predictions.json").read_text())
        body = {"dataframe_split": {"columns": golden["columns"], "data": golden["data"][:20]}}
        response = httpx.post(f"{url}/invocations", json=body, timeout=10)
        assert response.status_code == 200, response.text
        got = response.json()["predictions"]
        for row_got, row_want in zip(got, expected["predictions"][:20], strict=True):
            assert max(abs(a - b) for a, b in zip(row_got, row_want, strict=True)) < 1e-5
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)  # also closes the pipes
    assert server.returncode == 0, err


def test_serving_one_worker_answers_the_golden_rows_and_stops_cleanly(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from integration.test_package import make_packaged

    root, mv, package_dir = make_packaged(tmp_path / "proj")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "conveyor", "serve", mv.ref, "--port", str(port), "--no-log"]
    server = subprocess.Popen(
        argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
            time.sleep(0.1)
        golden = json.loads((package_dir / "golden" / "inputs.json").read_text())
        expected = json.loads((package_dir / "golden" / "predictions.json").read_text())
        body = {"dataframe_split": {"columns": golden["columns"], "data": golden["data"]}}
        response = httpx.post(f"{url}/invocations", json=body, timeout=10)
        assert response.status_code == 200, response.text
        got = response.json()["predictions"]
        for row_got, row_want in zip(got, expected["predictions"], strict=True):
            assert max(abs(a - b) for a, b in zip(row_got, row_want, strict=True)) < 1e-9
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"stopped serving {mv.ref}" in err


def test_a_failed_serve_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    import gc

    from click.testing import CliRunner

    from conveyor.cli.main import cli
    from conveyor.errors import NotFoundError
    from helpers import write_files

    root = write_files(tmp_path / "proj", {"conveyor.yaml": "name: sv\n"})
    result = CliRunner().invoke(cli, ["-C", str(root), "serve", "nosuch:1"])
    assert isinstance(result.exception, NotFoundError)
    assert gc.isenabled()
