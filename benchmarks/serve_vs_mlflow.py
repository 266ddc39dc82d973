"""Prediction service throughput and latency: ``conveyor serve`` vs ``mlflow models serve``.

What it measures
    Requests per second and latency percentiles of one-row predictions over HTTP, POSTed to
    ``/invocations`` as MLflow's ``dataframe_split`` JSON by the same external load generator
    (``wrk``, closed loop, one thread), at concurrency 8 and 64, against:

    * ``conveyor serve NAME:1 --workers 1``, with and without ``--batch`` (micro-batching), and
      with ``--onnx`` (the ONNX runtime) when ``conveyor model validate --onnx`` proves it;
    * ``mlflow models serve -m DIR --env-manager local --workers 1``, serving the same model
      exported with ``conveyor model export --format mlflow`` (MLflow 3.9+ loads its skops file);
    * two no-op endpoints, for the floor and the generator's ceiling: Conveyor's own
      ``conveyor.loadtest.noop`` (raw asyncio, answers from the bytes) and a bare ASGI app under
      uvicorn with Conveyor's uvicorn options (the HTTP stack Conveyor runs on, doing nothing).

    Two models, each trained by a Conveyor pipeline in a temporary project, registered with
    ``register_model`` and packaged with ``build_package``:

    * ``logreg`` - a LogisticRegression on 20 float features (``predict_proba``);
    * ``credit-risk`` - the example project's model (``examples/credit-risk``, copied and trained
      with its ``training`` pipeline): a HistGradientBoostingClassifier, 150 iterations, on 43
      float features.

    Requests cycle through 64 of the package's golden rows (one row per request). Before any
    load, both services must answer the same rows with the same predictions (within 1e-9).
    Every server runs pinned to one CPU and wrk to another (when the machine has two or more);
    all servers are started once and stay up, and the timed runs are interleaved (the order of
    the cases rotates every round), each after a 1 s warm-up. Figures are medians over rounds.
    Throughput counts 2xx responses only; any other response or socket error is printed.

    Cold start: from launching ``conveyor serve`` (package extraction and verification, skops
    load, uvicorn start-up) to the first 200 answer to a prediction on ``/invocations``, polled
    every 5 ms; MLflow's is measured the same way, for reference. The floor printed with them
    is a process importing scikit-learn (``sklearn.base``, which every scikit-learn model
    imports, and which imports scipy.stats and pandas), timed from launch until it has imported
    it (not until it exits): no service that loads a scikit-learn model can start faster.
    ``--cold-only`` measures the cold starts alone, without MLflow or wrk.

    MLflow is installed by this script into its own virtual environment under
    ``benchmarks/.work/mlflow-venv`` (``pip install mlflow`` with this environment's numpy,
    pandas, scikit-learn, scipy and skops pinned), reused when present. wrk comes from Debian's
    package (``apt-get install -y wrk`` when missing); if it cannot be installed, Conveyor's own
    generator (``conveyor loadtest --json``) is used instead, and the output says so.

Targets (from the issue)
    * concurrency 8: Conveyor's RPS at least 5x MLflow's, with at most a tenth of its p99;
    * concurrency 64 with ``--batch``: at least 3x Conveyor's own unbatched RPS (at 64);
    * cold start, process launch to the first 200: at most 1.5 s;
    * the generator's ceiling against the no-op endpoint: at least 2x the service's RPS.
    Also printed: Conveyor's RPS as a fraction of the no-op endpoint's, in the same run.
    For reference, measured earlier on the development machine: ``mlflow models serve``
    1.85k RPS at c=8 with p99 about 100 ms; the no-op endpoint 27k-47k RPS.

How to run (from the repository root)
    .venv/bin/python benchmarks/serve_vs_mlflow.py            # 10 s runs, 3 rounds (~12 min)
    .venv/bin/python benchmarks/serve_vs_mlflow.py --quick    # 3 s runs, 2 rounds (~4 min)
    .venv/bin/python benchmarks/serve_vs_mlflow.py --profile  # also: cProfile of one
                                                              # `conveyor serve` under load
    .venv/bin/python benchmarks/serve_vs_mlflow.py --cold-only --cold 9  # cold starts alone
                                                              # (~1 min; no MLflow, no wrk)
Options: --duration S, --rounds N, --cold N (cold starts per model), --models logreg,credit-risk,
--generator wrk|conveyor, --keep (leave the temporary projects in place).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import pstats
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
MLFLOW_VENV = WORK / "mlflow-venv"
BIN = Path(sys.executable).parent
PYTHON = Path(sys.executable)
CONVEYOR = BIN / "conveyor"
EXAMPLE = REPO / "examples" / "credit-risk"

RPS_VS_MLFLOW = 5.0  # at c=8
P99_VS_MLFLOW = 0.1  # at c=8
BATCH_GAIN = 3.0  # --batch at c=64 vs unbatched at c=64
COLD_START_S = 1.5
CEILING_RATIO = 2.0
REFERENCE = "mlflow models serve 1.85k RPS at c=8, p99 ~100 ms; no-op endpoint 27k-47k RPS"

CONCURRENCY = (8, 64)
ROWS = 64  # distinct rows the requests cycle through
PINNED = ("numpy", "pandas", "scikit-learn", "scipy", "skops")

ENV = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"}

# -- the logistic regression's project --------------------------------------------------------
LOGREG_PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step
from conveyor.steps import evaluate_model

FEATURES = 20


@step(outputs=("train", "test"))
def data(n: int = 10000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, FEATURES))
    y = (x[:, 0] + x[:, 1] - x[:, 2] + rng.normal(size=n) > 0.3).astype(int)
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
    df["label"] = y
    return df.iloc[: n // 2].reset_index(drop=True), df.iloc[n // 2 :].reset_index(drop=True)


@step
def train(train: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(train.drop(columns="label"), train["label"])


@pipeline
def main():
    tr, te = data()
    model = train(tr)
    evaluate_model(model, te, bootstrap=50)
"""

LOGREG_CONFIG = """
name: logreg
pipelines:
  main: pipelines/main.py:main
model:
  name: logreg
  predict: predict_proba
checks:
  model:
    label: label
    thresholds: {roc_auc: ">= 0.6"}
"""

# Runs in the project's directory: train, register as NAME:1, package, and extract the package.
BUILD = """
import json, sys
from pathlib import Path
from conveyor.engine.project import open_project
from conveyor.engine.run import RunOptions, run_pipeline
from conveyor.registry.package import build_package, open_package
from conveyor.registry.versions import register_model

pipeline, step, name, dest = sys.argv[1:5]
with open_project(Path.cwd(), environ={}) as project:
    outcome = run_pipeline(project, RunOptions(pipeline=pipeline))
    if outcome.status != "succeeded":
        raise SystemExit(f"{pipeline} {outcome.status}: {[s.error for s in outcome.steps]}")
    mv = register_model(project.metadata, name=name, run_ref=outcome.run_id, step=step)
    info = build_package(project, mv)
    directory = open_package(project, info.version, Path(dest))
print(json.dumps({"ref": info.ref, "digest": info.digest, "package": str(directory)}))
"""

# A bare ASGI app under uvicorn with Conveyor's options: reads the body, answers 200.
UVICORN_NOOP = """
import sys
import uvicorn

BODY = b'{"predictions":[0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"19")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False,
            server_header=False, log_level="warning", lifespan="off")
"""

# What loading a scikit-learn model from skops and serving it must import, whoever serves it.
IMPORTS = "import sklearn.base"
FLOOR = "floor: import scikit-learn"

# wrk's script: one request per golden row, prepared once per thread, taken in turn.
LUA = """
local bodies = {{
{bodies}
}}
local requests = {{}}
local i = 0

function init(args)
  local headers = {{["Content-Type"] = "application/json"}}
  for k, body in ipairs(bodies) do
    requests[k] = wrk.format("POST", "/invocations", headers, body)
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
"""


def sh(argv: list[Any], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


# -- tools ------------------------------------------------------------------------------------
def ensure_wrk() -> str | None:
    """The path of wrk, installing Debian's package when missing; None if that fails."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for argv in ([*sudo, "apt-get", "update"], [*sudo, "apt-get", "install", "-y", "wrk"]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"  {' '.join(argv)} failed: {proc.stderr.strip()[-300:]}")
            return None
    return shutil.which("wrk")


def ensure_mlflow() -> Path:
    """MLflow's venv, with this environment's versions of the packages the model needs."""
    python = MLFLOW_VENV / "bin" / "python"
    wanted = ["mlflow", *(f"{name}=={version(name)}" for name in PINNED)]
    marker = MLFLOW_VENV / ".complete"
    if marker.is_file() and marker.read_text().split() == wanted and python.exists():
        return python
    print(f"installing MLflow into {MLFLOW_VENV} (once) ...", flush=True)
    if not python.exists():
        shutil.rmtree(MLFLOW_VENV, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        sh([PYTHON, "-m", "venv", MLFLOW_VENV])
    sh([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted])
    marker.write_text("\n".join(wanted) + "\n")
    return python


def has_module(python: Path, name: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([python, "-c", code], capture_output=True, check=False).returncode == 0


# -- models -----------------------------------------------------------------------------------
@dataclass
class Model:
    name: str
    root: Path  # the Conveyor project
    package: Path  # the extracted package (for its golden rows)
    mlflow_dir: Path  # the MLflow export
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    def body(self, k: int) -> bytes:
        doc = {"dataframe_split": {"columns": self.columns, "data": [self.rows[k]]}}
        return json.dumps(doc, separators=(",", ":")).encode()


def build_model(name: str, work: Path) -> Model:
    root = work / name
    if name == "logreg":
        (root / "pipelines").mkdir(parents=True)
        (root / "conveyor.yaml").write_text(LOGREG_CONFIG.lstrip())
        (root / "pipelines" / "main.py").write_text(LOGREG_PIPELINE.lstrip())
        pipeline, step = "main", "train"
    elif name == "credit-risk":
        ignore = shutil.ignore_patterns(".conveyor", "__pycache__", ".*_cache")
        shutil.copytree(EXAMPLE, root, ignore=ignore)
        pipeline, step = "training", "train"
    else:
        raise SystemExit(f"unknown model '{name}': logreg or credit-risk")
    package = work / f"{name}-package"
    out = json.loads(sh([PYTHON, "-c", BUILD, pipeline, step, name, package], cwd=root))
    mlflow_dir = work / f"{name}-mlflow"
    sh([CONVEYOR, "model", "export", out["ref"], "--format", "mlflow", "-o", mlflow_dir], root)
    golden = json.loads((package / "golden" / "inputs.json").read_text())
    return Model(name, root, package, mlflow_dir, golden["columns"], golden["data"][:ROWS])


# -- servers ----------------------------------------------------------------------------------
def cpus() -> tuple[set[int] | None, set[int] | None]:
    """(the servers' CPU, the generator's CPU), or (None, None) on one CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[-1]}, {allowed[0]}


def pinned(cpu: set[int] | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, cpu)


_TAKEN: set[int] = set()


def free_port() -> int:
    """A free TCP port above 20000, chosen now, never handed out twice in this run."""
    for _ in range(1000):
        # below 32768, where clients' own (ephemeral) ports begin, so no connection holds it
        port = random.randint(20001, 32767)
        if port in _TAKEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _TAKEN.add(port)
        return port
    raise SystemExit("no free port above 20000")


def post(port: int, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Server:
    label: str
    argv: list[Any]
    cwd: Path | None = None
    env: dict[str, str] | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started: float = 0.0

    def start(self, cpu: set[int] | None, log_dir: Path) -> None:
        self.log = log_dir / f"{re.sub(r'[^a-z0-9]+', '-', self.label.lower())}-{self.port}.log"
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(a) for a in self.argv],
            cwd=self.cwd,
            env=self.env or ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: MLflow starts uvicorn as a child
            preexec_fn=pinned(cpu),
        )
        out.close()

    def wait_ready(self, body: bytes, timeout: float = 180.0, poll: float = 0.005) -> float:
        """Seconds from launch to the first 200 answer to ``body`` on /invocations."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = post(self.port, body, timeout=2.0)
                if status == 200:
                    return time.perf_counter() - self.started
            time.sleep(poll)
        raise SystemExit(f"{self.label} did not answer 200 within {timeout:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log else ""

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


SERVE_ARGS: list[str] = []  # --no-log adds itself here


def conveyor_server(model: Model, batch: bool, port: int, onnx: bool = False) -> Server:
    argv = [CONVEYOR, "serve", f"{model.name}:1", "--port", port, "--workers", 1, *SERVE_ARGS]
    argv += ["--batch"] if batch else []
    argv += ["--onnx"] if onnx else []
    label = f"conveyor{' --batch' if batch else ''}{' --onnx' if onnx else ''} {model.name}"
    return Server(label, argv, cwd=model.root, port=port)


def mlflow_server(model: Model, mlflow_python: Path, port: int) -> Server:
    venv_bin = mlflow_python.parent
    # MLflow starts `uvicorn` through bash: its venv's bin must come first on PATH.
    env = {**ENV, "PATH": f"{venv_bin}{os.pathsep}{ENV.get('PATH', '')}"}
    argv = [venv_bin / "mlflow", "models", "serve", "-m", model.mlflow_dir]
    argv += ["--env-manager", "local", "-p", port, "--workers", 1]
    return Server(f"mlflow {model.name}", argv, env=env, port=port)


# -- load -------------------------------------------------------------------------------------
@dataclass
class Result:
    rps: float  # 2xx responses per second
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx responses
    socket_errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"cannot read wrk's latency '{text}'")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> Result:
    def find(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, text)
        if m:
            return m.group(1)
        if default is None:
            raise SystemExit(f"cannot read wrk's output:\n{text}")
        return default

    requests = int(find(r"(\d+) requests in"))
    elapsed = float(find(r"requests in ([\d.]+)s"))
    bad = int(find(r"Non-2xx or 3xx responses: (\d+)", "0"))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    return Result(
        rps=(requests - bad) / elapsed if elapsed > 0 else 0.0,
        p50_ms=_ms(find(r"\n\s+50%\s+(\S+)")),
        p99_ms=_ms(find(r"\n\s+99%\s+(\S+)")),
        requests=requests,
        bad=bad,
        socket_errors=socket_errors,
    )


class Generator:
    """wrk (or, without it, `conveyor loadtest`), pinned to the generator's CPU."""

    def __init__(self, wrk: str | None, cpu: set[int] | None, work: Path) -> None:
        self.wrk, self.cpu, self.work = wrk, cpu, work
        self.scripts: dict[str, Path] = {}
        self.inputs: dict[str, Path] = {}

    def name(self) -> str:
        if self.wrk:
            first = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, check=False)
            return (first.stdout + first.stderr).splitlines()[0].split(" [")[0]
        return "conveyor loadtest"

    def prepare(self, model: Model) -> None:
        bodies = [model.body(k).decode() for k in range(len(model.rows))]
        quoted = ",\n".join(json.dumps(b) for b in bodies)  # a JSON string is a Lua string here
        script = self.work / f"{model.name}.lua"
        script.write_text(LUA.format(bodies=quoted))
        self.scripts[model.name] = script
        rows = self.work / f"{model.name}-rows.json"
        rows.write_text(json.dumps({"columns": model.columns, "data": model.rows}))
        self.inputs[model.name] = rows

    def run(self, port: int, model: Model, concurrency: int, seconds: float) -> Result:
        url = f"http://127.0.0.1:{port}/invocations"
        argv: list[Any]
        if self.wrk:
            argv = [self.wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
            argv += ["--latency", "--timeout", "10s", "-s", self.scripts[model.name], url]
        else:
            argv = [CONVEYOR, "loadtest", url, "-c", concurrency, "-d", f"{seconds}s"]
            argv += ["--warmup", "0s", "--ceiling", "0s", "--inputs", self.inputs[model.name]]
            argv += ["--json"]
        proc = subprocess.run(
            [str(a) for a in argv],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=pinned(self.cpu),
        )
        if self.wrk:
            if proc.returncode != 0 or proc.stderr.strip():
                raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
            return parse_wrk(proc.stdout)
        try:
            doc = json.loads(proc.stdout)["result"]
        except (ValueError, KeyError):
            raise SystemExit(f"conveyor loadtest failed:\n{proc.stdout}{proc.stderr}") from None
        return Result(
            rps=doc["ok_qps"],
            p50_ms=doc["latency"]["p50_ms"] or 0.0,
            p99_ms=doc["latency"]["p99_ms"] or 0.0,
            requests=doc["requests"],
            bad=doc["responses"] - doc["ok"],
            socket_errors=sum(doc["failures"].values()),
        )


# -- checks -----------------------------------------------------------------------------------
def same_predictions(model: Model, ports: dict[str, int], n: int = 8) -> None:
    """Every service answers the first ``n`` rows with 200 and the same predictions (within
    1e-9; the ONNX runtime, which computes in float32, within the tolerance its proof used)."""
    from conveyor.registry.onnx import DEFAULT_TOLERANCE

    for k in range(n):
        got = {}
        for label, port in ports.items():
            status, body = post(port, model.body(k))
            if status != 200:
                raise SystemExit(f"{label} answered {status} to row {k}: {body[:300]!r}")
            got[label] = json.loads(body)["predictions"]
        first_label, first = next(iter(got.items()))
        for label, value in got.items():
            if not close(value, first, DEFAULT_TOLERANCE if "--onnx" in label else 1e-9):
                raise SystemExit(
                    f"{label} and {first_label} disagree on row {k}: {value} vs {first}"
                )


def close(a: Any, b: Any, tol: float = 1e-9) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= tol
    return bool(a == b)


def verdict(ok: bool) -> str:
    return "MET   " if ok else "MISSED"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def service_warnings(servers: list[Server], most: int = 20) -> list[str]:
    """Distinct warning, error and traceback lines of the Conveyor services' logs."""
    seen: dict[str, None] = {}
    for server in servers:
        if not server.label.startswith("conveyor") or server.log is None:
            continue
        for line in server.log.read_text(errors="replace").splitlines():
            if re.search(r"WARNING|ERROR|Traceback|Exception", line):
                seen.setdefault(f"{server.label}: {line.strip()[:200]}", None)
    return list(seen)[:most]


# -- profile ----------------------------------------------------------------------------------
def profile(model: Model, gen: Generator, cpu: set[int] | None, work: Path, seconds: float) -> None:
    """cProfile of one unbatched `conveyor serve` under wrk at c=8 (the profiler slows it)."""
    out = work / "serve.prof"
    port = free_port()
    argv = [PYTHON, "-m", "cProfile", "-o", out, "-m", "conveyor", "serve", f"{model.name}:1"]
    argv += ["--port", port, "--workers", 1]
    server = Server(f"profiled conveyor {model.name}", argv, cwd=model.root, port=port)
    server.start(cpu, work)
    try:
        server.wait_ready(model.body(0))
        result = gen.run(port, model, 8, seconds)
    finally:
        server.stop()
    print(
        f"\n--- cProfile of `conveyor serve {model.name}:1` under c=8 for {seconds:.0f} s "
        f"({result.rps:.0f} RPS while profiled); top 25 by internal time ---"
    )
    if not out.exists():
        print("(no profile written: the server did not exit cleanly)")
        return
    for sort, pattern, title in (
        ("tottime", "", "all functions, internal time"),
        ("cumulative", r"src/conveyor", "in src/conveyor, cumulative"),
    ):
        buf = io.StringIO()
        stats = pstats.Stats(str(out), stream=buf)
        stats.sort_stats(sort)
        stats.print_stats(pattern, 25) if pattern else stats.print_stats(25)
        text = buf.getvalue()
        start = text.find("   ncalls")
        print(f"\n--- {title} ---")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


# -- cold starts ------------------------------------------------------------------------------
def cold_starts(
    models: list[Model],
    colds: int,
    cpu: set[int] | None,
    work: Path,
    mlflow_python: Path | None,
) -> dict[str, list[float]]:
    """Seconds from launch to the first 200 on /invocations, one server at a time, interleaved
    with the floor (a process importing scikit-learn); MLflow (when given) up to 3
    times per model."""
    who = "Conveyor, up to 3 for MLflow" if mlflow_python else "Conveyor"
    print(f"\ncold starts ({colds} per model for {who}) ...", flush=True)
    cold: dict[str, list[float]] = {}
    for r in range(colds):
        cold.setdefault(FLOOR, []).append(floor_seconds(cpu))
        for model in models:
            launches = [("conveyor", conveyor_server(model, False, free_port()))]
            if proven_onnx(model):
                launches.append(
                    ("conveyor --onnx", conveyor_server(model, False, free_port(), True))
                )
            if mlflow_python is not None and r < 3:
                launches.append(("mlflow", mlflow_server(model, mlflow_python, free_port())))
            for kind, server in launches:
                with running([server], cpu, work):
                    cold.setdefault(f"{kind} {model.name}", []).append(
                        server.wait_ready(model.body(0), poll=0.005)
                    )
    return cold


_ONNX: dict[str, bool] = {}


def proven_onnx(model: Model) -> bool:
    """Whether the model's ONNX file is proven equivalent (``conveyor model validate --onnx``
    runs once per model), so ``conveyor serve --onnx`` may serve it."""
    if model.name not in _ONNX:
        proc = subprocess.run(
            [CONVEYOR, "model", "validate", f"{model.name}:1", "--onnx"],
            cwd=model.root,
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        _ONNX[model.name] = proc.returncode == 0
        if proc.returncode != 0:
            print(f"({model.name}: no proven ONNX file, so no --onnx cold start)", flush=True)
    return _ONNX[model.name]


def floor_seconds(cpu: set[int] | None) -> float:
    """Seconds from launch until a process has imported scikit-learn: until it says
    so, not until it exits (tearing those modules down takes a further ~0.2 s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-c", f"{IMPORTS}; print('imported', flush=True)"],
        env=ENV,
        stdout=subprocess.PIPE,
        preexec_fn=pinned(cpu),
    )
    assert proc.stdout is not None
    said = proc.stdout.readline()
    seconds = time.perf_counter() - start
    proc.stdout.close()
    if proc.wait() != 0 or not said:
        raise SystemExit(f"importing scikit-learn failed: {IMPORTS}")
    return seconds


def print_vs_mlflow(label: str, ours: Result, mlflow: Result) -> None:
    """The c=8 verdicts: RPS and p99 as ratios to MLflow's."""
    ratio = ours.rps / mlflow.rps if mlflow.rps else float("inf")
    print(
        f"{label}: c=8 RPS {ours.rps:.0f} vs MLflow {mlflow.rps:.0f} = {ratio:.2f}x  "
        f"{verdict(ratio >= RPS_VS_MLFLOW)} (target >= {RPS_VS_MLFLOW:g}x)"
    )
    p99 = ours.p99_ms / mlflow.p99_ms if mlflow.p99_ms else float("inf")
    print(
        f"{label}: c=8 p99 {ours.p99_ms:.2f} ms vs MLflow {mlflow.p99_ms:.2f} ms = {p99:.3f}x  "
        f"{verdict(p99 <= P99_VS_MLFLOW)} (target <= {P99_VS_MLFLOW:g}x)"
    )


def print_cold_starts(cold: dict[str, list[float]]) -> None:
    print(f"\n{'cold start, launch to first 200':<34}{'median s':>10}{'min s':>8}{'max s':>8}")
    print("-" * 60)
    for label, values in cold.items():
        print(
            f"{label:<34}{statistics.median(values):>10.3f}{min(values):>8.3f}{max(values):>8.3f}"
        )


def print_cold_verdict(name: str, cold: dict[str, list[float]]) -> None:
    for kind in ("conveyor", "conveyor --onnx"):
        values = cold.get(f"{kind} {name}")
        if not values:
            continue
        cs = statistics.median(values)
        runtime = "ONNX runtime" if "onnx" in kind else "skops/scikit-learn"
        floor = (
            f"; importing scikit-learn alone took {statistics.median(cold[FLOOR]):.3f} s"
            if kind == "conveyor" and cold.get(FLOOR)
            else ""
        )
        print(
            f"{name} ({runtime}): cold start {cs:.3f} s (max {max(values):.3f} s)  "
            f"{verdict(cs <= COLD_START_S)} (target <= {COLD_START_S} s){floor}"
        )


def cold_only(names: list[str], colds: int, keep: bool) -> None:
    """--cold-only: the cold starts alone, without MLflow, wrk or the load runs."""
    server_cpu, _ = cpus()
    work = Path(tempfile.mkdtemp(prefix="cvbench-serve-"))
    try:
        print("Cold start of conveyor serve, process launch to the first 200 on /invocations")
        print(f"load average {load()}; servers pinned to CPU {sorted(server_cpu or [])}")
        print(f"scratch under {work}; building the models ...", flush=True)
        models = [build_model(name, work) for name in names]
        cold = cold_starts(models, colds, server_cpu, work, None)
        print_cold_starts(cold)
        print()
        for model in models:
            print_cold_verdict(model.name, cold)
        print(f"load average at the end: {load()}")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# -- main -------------------------------------------------------------------------------------
@contextlib.contextmanager
def running(servers: list[Server], cpu: set[int] | None, logs: Path) -> Iterator[None]:
    try:
        for server in servers:
            server.start(cpu, logs)
        yield
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 rounds, 2 cold starts")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (10)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument("--cold", type=int, default=None, help="cold starts per model (5)")
    parser.add_argument("--models", default="logreg,credit-risk", help="logreg,credit-risk")
    parser.add_argument("--generator", choices=("wrk", "conveyor"), default="wrk")
    parser.add_argument("--profile", action="store_true", help="cProfile one conveyor serve")
    parser.add_argument(
        "--no-log", action="store_true", help="serve without the prediction log (default: on)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument(
        "--cold-only", action="store_true", help="only the cold starts (no MLflow, no load)"
    )
    args = parser.parse_args()
    seconds = args.duration or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (2 if args.quick else 3)
    colds = args.cold or (2 if args.quick else 5)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.no_log:
        SERVE_ARGS.append("--no-log")
    if args.cold_only:
        cold_only(names, colds, args.keep)
        return

    wrk = ensure_wrk() if args.generator == "wrk" else None
    mlflow_python = ensure_mlflow()
    server_cpu, gen_cpu = cpus()
    work = Path(tempfile.mkdtemp(prefix="cvbench-serve-"))
    servers: list[Server] = []
    try:
        print("One-row predictions on /invocations, one worker per service, closed loop")
        mlflow_version = sh([mlflow_python, "-c", "import mlflow; print(mlflow.__version__)"])
        print(f"load average {load()}")
        print(f"scratch under {work}; building the models ...", flush=True)
        t0 = time.perf_counter()
        models = {name: build_model(name, work) for name in names}
        print(f"  built, registered, packaged and exported in {time.perf_counter() - t0:.1f} s")
        gen = Generator(wrk, gen_cpu, work)
        for model in models.values():
            gen.prepare(model)
        if wrk is None:
            why = "as asked" if args.generator == "conveyor" else "wrk could not be installed"
            print(f"NOTE: the generator is Conveyor's own `conveyor loadtest` ({why}), not wrk")
        print(f"generator: {gen.name()}, 1 thread, pinned to CPU {sorted(gen_cpu or [])}")
        print(
            f"servers pinned to CPU {sorted(server_cpu or [])}; conveyor serve "
            f"{'--no-log' if args.no_log else 'with its prediction log (the default)'}"
        )
        print(
            f"MLflow {mlflow_version.strip()} ({MLFLOW_VENV}); scikit-learn "
            f"{version('scikit-learn')} on both sides; uvloop/httptools installed: Conveyor "
            f"{has_module(PYTHON, 'uvloop')}/{has_module(PYTHON, 'httptools')}, MLflow "
            f"{has_module(mlflow_python, 'uvloop')}/{has_module(mlflow_python, 'httptools')}"
        )

        # The services, all started once; each case is (label, server, model, concurrency).
        noop = Server("no-op (conveyor.loadtest.noop)", [])
        noop.port = free_port()
        from conveyor.loadtest import noop as noop_module

        noop.argv = [PYTHON, "-I", noop_module.__file__, "--port", noop.port]
        uv = Server("no-op ASGI under uvicorn", [PYTHON, "-c", UVICORN_NOOP], port=free_port())
        uv.argv.append(uv.port)
        servers = [noop, uv]
        per_model: dict[str, dict[str, Server]] = {}
        for model in models.values():
            per_model[model.name] = {
                "conveyor": conveyor_server(model, False, free_port()),
                "conveyor --batch": conveyor_server(model, True, free_port()),
                "mlflow": mlflow_server(model, mlflow_python, free_port()),
            }
            if proven_onnx(model):
                per_model[model.name]["conveyor --onnx"] = conveyor_server(
                    model, False, free_port(), True
                )
            servers += per_model[model.name].values()
        first = next(iter(models.values()))
        cases: list[tuple[str, Server, Model, int]] = []
        for c in CONCURRENCY:
            cases.append((noop.label, noop, first, c))
            cases.append((uv.label, uv, first, c))
        for model in models.values():
            for kind, server in per_model[model.name].items():
                for c in CONCURRENCY:
                    cases.append((f"{kind} {model.name}", server, model, c))

        with running(servers, server_cpu, work):
            for server in servers:
                model = next((m for m in models.values() if m.name in server.label), first)
                server.wait_ready(model.body(0))
            for model in models.values():
                same_predictions(model, {k: s.port for k, s in per_model[model.name].items()})
            print("all services up; Conveyor and MLflow predict the same on the golden rows")
            print(
                f"\n{len(cases)} cases x {rounds} rounds x {seconds:.0f} s (+1 s warm-up each) ...",
                flush=True,
            )
            samples: dict[tuple[str, int], list[Result]] = {}
            for r in range(rounds):
                order = cases[r % len(cases) :] + cases[: r % len(cases)]
                for label, server, model, c in order:
                    gen.run(server.port, model, c, 1)  # warm-up, not counted
                    res = gen.run(server.port, model, c, seconds)
                    samples.setdefault((label, c), []).append(res)
                    if res.bad or res.socket_errors:
                        print(
                            f"  round {r + 1}: {label} c={c}: {res.bad} non-2xx of "
                            f"{res.requests}, {res.socket_errors} socket errors"
                        )
                print(f"  round {r + 1}/{rounds} done; load average {load()}", flush=True)

        cold = cold_starts(list(models.values()), colds, server_cpu, work, mlflow_python)

        # -- report ---------------------------------------------------------------------------
        med: dict[tuple[str, int], Result] = {}
        print(f"\n{'service':<34}{'c':>4}{'RPS':>9}{'min':>8}{'max':>8}{'p50 ms':>9}{'p99 ms':>9}")
        print(f"{'':<34}{'':>4}{'(2xx)':>9}{'':>8}{'':>8}{'':>9}{'':>9}  errors")
        print("-" * 88)
        for (label, c), results in samples.items():
            rps = [x.rps for x in results]
            res = Result(
                rps=statistics.median(rps),
                p50_ms=statistics.median(x.p50_ms for x in results),
                p99_ms=statistics.median(x.p99_ms for x in results),
                requests=sum(x.requests for x in results),
                bad=sum(x.bad for x in results),
                socket_errors=sum(x.socket_errors for x in results),
            )
            med[(label, c)] = res
            errors = (
                f"{res.bad} non-2xx, {res.socket_errors} socket"
                if (res.bad or res.socket_errors)
                else "-"
            )
            print(
                f"{label:<34}{c:>4}{res.rps:>9.0f}{min(rps):>8.0f}{max(rps):>8.0f}"
                f"{res.p50_ms:>9.2f}{res.p99_ms:>9.2f}  {errors}"
            )
        print_cold_starts(cold)
        print(f"\nreference (measured earlier on the development machine): {REFERENCE}")

        print()
        for model in models.values():
            n = model.name
            cv8, ml8 = med[(f"conveyor {n}", 8)], med[(f"mlflow {n}", 8)]
            cv64, b64 = med[(f"conveyor {n}", 64)], med[(f"conveyor --batch {n}", 64)]
            print_vs_mlflow(n, cv8, ml8)
            onnx8 = med.get((f"conveyor --onnx {n}", 8))
            if onnx8 is not None:
                print_vs_mlflow(f"{n} --onnx", onnx8, ml8)
            gain = b64.rps / cv64.rps if cv64.rps else float("inf")
            print(
                f"{n}: c=64 --batch RPS {b64.rps:.0f} vs unbatched {cv64.rps:.0f} = {gain:.2f}x  "
                f"{verdict(gain >= BATCH_GAIN)} (target >= {BATCH_GAIN:g}x)"
            )
            print_cold_verdict(n, cold)
            for c in CONCURRENCY:
                noop_rps, uv_rps = med[(noop.label, c)].rps, med[(uv.label, c)].rps
                fractions = ", ".join(
                    f"{kind} {med[(f'{kind} {n}', c)].rps / noop_rps:.3f}"
                    for kind in ("conveyor", "conveyor --batch", "conveyor --onnx")
                    if (f"{kind} {n}", c) in med
                )
                print(
                    f"{n}: c={c} RPS as a fraction of the no-op endpoint's: {fractions} "
                    f"(bare uvicorn: {uv_rps / noop_rps:.3f})"
                )
        for c in CONCURRENCY:
            noop_rps = med[(noop.label, c)].rps
            best_label, best = max(
                (
                    (label, res.rps)
                    for (label, cc), res in med.items()
                    if cc == c and not label.startswith("no-op")
                ),
                key=lambda kv: kv[1],
            )
            ratio = noop_rps / best if best else float("inf")
            print(
                f"generator ceiling c={c}: no-op {noop_rps:.0f} RPS = {ratio:.2f}x the fastest "
                f"service ({best_label}, {best:.0f})  {verdict(ratio >= CEILING_RATIO)} "
                f"(target >= {CEILING_RATIO:g}x)"
            )
        problems = service_warnings(servers)
        if problems:
            print("\nwarnings and errors in the services' logs:")
            for line in problems:
                print(f"  {line}")
        print(f"load average at the end: {load()}")

        if args.profile:
            profile(first, gen, server_cpu, work, seconds)
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"\nprojects kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
