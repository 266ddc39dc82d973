"""Load tests against real HTTP servers: a tiny ASGI app under uvicorn in its own process, the
no-op endpoint, and the prediction service of a real package. Durations are short; nothing
asserts a wall-clock figure, only counts, structure and the order of percentiles."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.loadtest_cmd import loadtest
from conveyor.errors import UsageError
from conveyor.loadtest import Endpoint, LoadShape, Rows, build_payload, measure
from conveyor.loadtest.noop import noop_server
from helpers import free_port, write_files

APP = """
import asyncio
import itertools

counter = itertools.count(1)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status, path = 200, scope["path"]
    if path == "/flaky":  # every tenth request fails
        status = 500 if next(counter) % 10 == 0 else 200
    elif path == "/slow":
        await asyncio.sleep(0.05)
    elif path == "/hang":
        await asyncio.sleep(3)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    if path == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})
"""

INPUTS = '{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0.5], [2, NaN], [3, 1.5]]}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the tiny ASGI app under uvicorn, in its own process."""
    app_dir = tmp_path_factory.mktemp("app")
    (app_dir / "ltapp.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "ltapp:app",
            "--app-dir",
            str(app_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"uvicorn exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def requests_for(url: str) -> tuple[Endpoint, list[bytes]]:
    endpoint = Endpoint.parse(url)
    rows = Rows(columns=["a"], data=[[1], [2], [3]], sources=("test",))
    return endpoint, build_payload(endpoint, rows).requests


def test_closed_loop_counts_every_response_by_status(server: str) -> None:
    endpoint, requests = requests_for(f"{server}/flaky")
    m = measure(endpoint, requests, LoadShape(concurrency=4, duration_s=1.0, warmup_s=0.2))
    assert m.requests == m.responses > 20
    assert set(m.statuses) == {200, 500}
    assert m.errors == {"500": m.statuses[500]}
    assert m.error_rate == pytest.approx(0.1, abs=0.02)
    assert m.ok == m.statuses[200] and m.failures == {}
    lat = m.latency
    assert lat.count == m.responses
    assert 0 < lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert m.qps > 0 and m.ok_qps < m.qps


def test_closed_loop_stops_at_max_requests(server: str) -> None:
    endpoint, requests = requests_for(f"{server}/ok")
    shape = LoadShape(concurrency=3, duration_s=30, warmup_s=0, max_requests=50)
    m = measure(endpoint, requests, shape)
    assert m.requests == m.ok == 50


def test_a_server_that_closes_each_connection_is_reconnected(server: str) -> None:
    endpoint, requests = requests_for(f"{server}/close")
    m = measure(endpoint, requests, LoadShape(concurrency=2, duration_s=0.5, warmup_s=0))
    assert m.ok > 10
    assert m.error_rate < 0.05  # a close after the response is not an error


def test_open_loop_keeps_its_schedule_against_a_fast_server(server: str) -> None:
    endpoint, requests = requests_for(f"{server}/ok")
    shape = LoadShape(concurrency=8, rate=200, duration_s=1.0, warmup_s=0.2)
    m = measure(endpoint, requests, shape)
    s = m.schedule
    assert s is not None and s.rate == 200
    assert s.scheduled in (199, 200, 201)
    assert m.requests + s.dropped == s.scheduled
    assert m.errors == {}
    assert m.latency.p50_ms <= m.latency.p99_ms <= m.latency.max_ms


def test_open_loop_reports_late_and_dropped_requests_when_the_server_is_slow(server: str) -> None:
    # Two connections to a 50 ms endpoint carry at most 40 requests/s; 100/s are asked for.
    endpoint, requests = requests_for(f"{server}/slow")
    shape = LoadShape(concurrency=2, rate=100, duration_s=1.0, warmup_s=0)
    m = measure(endpoint, requests, shape)
    s = m.schedule
    assert s is not None
    assert s.late > 0 and s.dropped > 0
    assert m.requests + s.dropped == s.scheduled
    assert m.errors == {}
    # Latency counts from the scheduled time, so it includes the wait for a connection.
    assert m.latency.p99_ms > m.latency.p50_ms >= 50.0


def test_requests_that_outlive_the_timeout_fail_as_timeouts(server: str) -> None:
    endpoint, requests = requests_for(f"{server}/hang")
    shape = LoadShape(concurrency=2, duration_s=0.6, warmup_s=0, timeout_s=0.2)
    m = measure(endpoint, requests, shape)
    assert m.responses == 0
    assert set(m.failures) == {"timeout"} and m.failures["timeout"] >= 2
    assert m.error_rate == 1.0


def test_nothing_listening_is_a_usage_error_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        endpoint, requests = requests_for(f"http://127.0.0.1:{port}/invocations")
        with pytest.raises(UsageError) as err:
            measure(endpoint, requests, LoadShape(concurrency=2, duration_s=0.2, warmup_s=0))
    assert "connection refused" in err.value.message and str(port) in err.value.message


def test_the_generator_outruns_the_no_op_endpoint() -> None:
    with noop_server() as port:
        endpoint, requests = requests_for(f"http://127.0.0.1:{port}/invocations")
        m = measure(endpoint, requests, LoadShape(concurrency=8, duration_s=0.5, warmup_s=0.1))
    assert m.ok == m.requests > 0 and m.errors == {}


# -- the command ---------------------------------------------------------------------------------


def run_cli(*args: str, inputs: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        loadtest,
        [*args, "--inputs", str(inputs), "--duration", "0.5s", "--warmup", "0.1s"],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return write_files(tmp_path, {"inputs.json": INPUTS}) / "inputs.json"


def test_cli_passes_a_met_slo_with_exit_code_0(server: str, inputs: Path) -> None:
    code, out, err = run_cli(
        f"{server}/ok", "--min-qps", "1", "--max-error-rate", "0", "--ceiling", "0", inputs=inputs
    )
    assert code == 0, err
    assert "pass  load.min_qps" in out and "pass  load.max_error_rate" in out
    assert out.rstrip().endswith("verdict: passed")


def test_cli_fails_an_unmet_slo_with_exit_code_1(server: str, inputs: Path) -> None:
    code, out, err = run_cli(
        f"{server}/flaky",
        "--max-error-rate",
        "0.01",
        "--max-p99-ms",
        "10000",
        "--ceiling",
        "0",
        "--json",
        inputs=inputs,
    )
    assert code == 1
    assert "failed its SLO" in err
    doc = json.loads(out)
    assert doc["passed"] is False
    assert set(doc["result"]["errors"]) == {"500"}
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["load.max_error_rate"]["passed"] is False
    assert checks["load.max_p99_ms"]["passed"] is True


def test_cli_json_report_with_the_generator_ceiling(server: str, inputs: Path) -> None:
    code, out, err = run_cli(
        f"{server}/ok", "--rate", "100", "--ceiling", "0.3s", "--json", inputs=inputs
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format"] == "conveyor.loadtest/1"
    assert doc["shape"] == {
        "mode": "open",
        "concurrency": 64,
        "rate": 100.0,
        "duration_s": 0.5,
        "warmup_s": 0.1,
        "max_requests": None,
        "timeout_s": 10.0,
    }
    assert doc["payload"]["rows"] == 3 and doc["payload"]["protocol"] == "mlflow"
    result = doc["result"]
    assert result["requests"] + result["schedule"]["dropped"] == result["schedule"]["scheduled"]
    lat = result["latency"]
    assert lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    ceiling = doc["ceiling"]
    assert ceiling["mode"] == "closed" and ceiling["connections"] == 64 and ceiling["qps"] > 0
    assert doc["ceiling_share"] == pytest.approx(result["qps"] / ceiling["qps"])
    assert "generator ceiling" in err


def test_cli_writes_markdown_and_html(server: str, inputs: Path, tmp_path: Path) -> None:
    page = tmp_path / "load.html"
    code, out, err = run_cli(
        f"{server}/ok", "--markdown", "--html", str(page), "--ceiling", "0", inputs=inputs
    )
    assert code == 0, err
    assert out.startswith("### ✅ Load test passed")
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_cli_url_without_rows_is_a_usage_error(server: str) -> None:
    result = CliRunner().invoke(loadtest, [f"{server}/ok"])
    assert isinstance(result.exception, UsageError)
    assert result.exception.exit_code == 2
    assert "--inputs" in (result.exception.hint or "")


# -- a registered model version, served by the command itself ------------------------------------

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step
from conveyor.steps import evaluate_model


@step(outputs=("train", "test"))
def data(n: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    k = rng.integers(0, 5, size=n)
    y = (a + 0.2 * k + 0.3 * rng.normal(size=n) > 0.4).astype(int)
    df = pd.DataFrame({"a": a, "b": b, "k": k, "label": y})
    return df.iloc[: n // 2].reset_index(drop=True), df.iloc[n // 2 :].reset_index(drop=True)


@step
def train(train: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(train[["a", "b", "k"]], train["label"])


@pipeline
def main():
    tr, te = data()
    evaluate_model(train(tr), te, bootstrap=20)
"""

CONFIG = """
name: lt
pipelines:
  main: pipelines/main.py:main
checks:
  model:
    label: label
"""


@pytest.fixture(scope="module")
def packaged_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose model is registered as lt:1 and packaged."""
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import register_model
    from helpers import open_and_run

    root = write_files(
        tmp_path_factory.mktemp("lt") / "proj",
        {"conveyor.yaml": CONFIG, "pipelines/main.py": PIPELINE},
    )
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    with open_project(root, environ={}) as project:
        mv = register_model(project.metadata, name="lt", run_ref=outcome.run_id, step="train")
        build_package(project, mv)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["mlflow", "v2"])
def test_cli_serves_a_model_version_and_loads_it(packaged_project: Path, protocol: str) -> None:
    args = ["lt:1", "--protocol", protocol, "--duration", "1s", "--warmup", "0.2s"]
    args += ["--ceiling", "0", "--max-error-rate", "0", "--rows-per-request", "2", "--json"]
    result = CliRunner().invoke(
        loadtest, args, obj={"project": packaged_project}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    doc = json.loads(result.stdout)
    assert doc["target"] == "lt:1"
    expected_path = "/invocations" if protocol == "mlflow" else "/v2/models/lt/infer"
    assert doc["url"].endswith(expected_path)
    # Golden rows (the first 200 evaluation rows) and the rest of the evaluation rows.
    assert doc["payload"]["rows"] == 300 and doc["payload"]["rows_per_request"] == 2
    assert any("evaluation rows" in s for s in doc["payload"]["sources"])
    # Every request was a valid prediction request: the service answered each with a 2xx.
    assert doc["result"]["ok"] == doc["result"]["requests"] > 0
    assert "starting the prediction service" in result.stderr
    # The service is stopped afterwards: its port no longer answers.
    port = int(doc["url"].split(":")[2].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
