"""Support for the delivery tests that run real environments: a project with three packaged
versions of one model, copies of it with environments on free ports, a traffic generator
that records which version answered each request, and the ``conveyor`` commands that
drive and inspect promotions.

The versions: ``pk:1`` and ``pk:2`` are the same trained model registered twice (the same
scores; a v2 inference response's ``model_version`` tells which answered); ``pk:3`` was
trained on shuffled labels, so its scores crowd the base rate where the others spread to 0
and 1: a large prediction shift (PSI about 6). ``pk:4`` is ``pk:1``'s model in a package
whose golden predictions were changed (and re-digested, as a forger would): the package
verifies, but the model no longer reproduces its own golden predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import conveyor, free_port, open_and_run, write_files
from integration.package_support import redigest

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from conveyor import pipeline, step
from conveyor.steps import evaluate_model


@step(outputs=("train", "test"))
def data(n: int = 800) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    k = rng.integers(0, 5, size=n)
    y = (a + 0.2 * k + 0.3 * rng.normal(size=n) > 0.4).astype(int)
    df = pd.DataFrame({"a": a, "b": b, "k": k, "label": y})
    return df.iloc[: n // 2].reset_index(drop=True), df.iloc[n // 2 :].reset_index(drop=True)


@step
def train(train: pd.DataFrame, shuffle: bool = False) -> HistGradientBoostingClassifier:
    y = train["label"].to_numpy()
    if shuffle:
        y = np.random.default_rng(1).permutation(y)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    return model.fit(train[["a", "b", "k"]], y)


@pipeline
def main(shuffle: bool = False):
    tr, te = data()
    model = train(tr, shuffle=shuffle)
    evaluate_model(model, te, bootstrap=20)
"""

CONFIG = """
name: rollout
pipelines:
  main: pipelines/main.py:main
checks:
  model:
    label: label
"""

# How long anything waited on may take before the test gives up; reached only on a hang.
PATIENCE_S = 120.0
_TEMPLATES: dict[str, Path] = {}


# -- the project -----------------------------------------------------------------------------
def template(factory: pytest.TempPathFactory) -> Path:
    """A project with ``pk:1`` .. ``pk:4`` registered and packaged, built once per session."""
    if "root" not in _TEMPLATES:
        _TEMPLATES["root"] = _build(factory.mktemp("rollout-template") / "proj")
    return _TEMPLATES["root"]


def _build(root: Path) -> Path:
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import register_model

    write_files(root, {"conveyor.yaml": CONFIG, "pipelines/main.py": PIPELINE})
    runs = []
    for params in ({}, {"shuffle": "true"}):
        outcome = open_and_run(root, params=params)
        assert outcome.status == "succeeded", [s.error for s in outcome.steps]
        runs.append(outcome.run_id)
    with open_project(root, environ={}) as project:
        for run_id in (runs[0], runs[0], runs[1], runs[0]):
            mv = register_model(project.metadata, name="pk", run_ref=run_id, step="train")
            if mv.version < 4:
                build_package(project, mv)
            else:
                _forge_golden(project, mv, build_package(project, mv).digest, root.parent)
    return root


def _forge_golden(project: Any, mv: Any, good_digest: str, scratch: Path) -> None:
    """Give ``mv`` a package like ``good_digest`` whose golden predictions are off by 0.25."""
    from conveyor.registry.package_read import GOLDEN_PREDICTIONS, open_package
    from conveyor.store import tables as t

    directory = open_package(project, good_digest, scratch / "forged" / "package")
    path = directory / GOLDEN_PREDICTIONS
    doc = json.loads(path.read_text())
    doc["predictions"] = [[p + 0.25 for p in row] for row in doc["predictions"]]
    path.write_text(json.dumps(doc))
    redigest(directory)
    stored = project.artifacts.save(directory)
    with project.metadata.writer.begin() as conn:  # a package is immutable: replace it here
        conn.execute(
            t.model_versions.update()
            .where(t.model_versions.c.name == mv.name, t.model_versions.c.version == mv.version)
            .values(package_digest=stored.digest)
        )


def environments_yaml(envs: dict[str, dict[str, Any]]) -> str:
    """An ``environments:`` list, in order; each environment a local target on a free port."""
    listed = []
    for name, extra in envs.items():
        env = {"name": name, "target": {"kind": "local", "port": free_port()}, **extra}
        listed.append(env)
    return "environments: " + json.dumps(listed) + "\n"


def deployable(factory: pytest.TempPathFactory, name: str, envs: dict[str, dict[str, Any]]) -> Path:
    """A copy of the template project with ``envs`` (name -> settings) in conveyor.yaml."""
    root = factory.mktemp(name) / "proj"
    shutil.copytree(template(factory), root)
    config = root / "conveyor.yaml"
    config.write_text(config.read_text() + environments_yaml(envs))
    return root


# -- commands --------------------------------------------------------------------------------
def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``conveyor ARGS``, run to completion."""
    return conveyor(*args, cwd=root, env=env, timeout=PATIENCE_S * 2)


def cli_json(root: Path, *args: str) -> Any:
    proc = conveyor(*args, "--json", cwd=root, check=True, timeout=PATIENCE_S)
    return json.loads(proc.stdout)


def status(root: Path, env: str) -> dict[str, Any]:
    """``conveyor status --json`` for one environment (which recovers abandoned promotions)."""
    rows = cli_json(root, "status")
    return next(row for row in rows if row["environment"] == env)


def history(root: Path, env: str, limit: int = 1) -> list[dict[str, Any]]:
    """The environment's last promotions with their events, newest first, as ``conveyor
    history --json`` shows them, read in-process (reading recovers nothing)."""
    from conveyor.deploy.state import Delivery
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        delivery = Delivery(project.metadata)
        return [
            {**p.to_json(), "events": [e.to_json() for e in delivery.events(p.id)]}
            for p in delivery.promotions(env, limit)
        ]


def desired(root: Path, env: str) -> Any:
    """The environment's desired state (an ``EnvState``), read in-process."""
    from conveyor.deploy.state import Delivery
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        return Delivery(project.metadata).env_state(env)


def promote(root: Path, ref: str, env: str, **environ: str) -> tuple[int, dict[str, Any]]:
    """``conveyor promote REF --to ENV``: (exit code, the environment's last promotion with
    its events and the command's ``stdout`` and ``stderr``)."""
    proc = cli(root, "promote", ref, "--to", env, env=environ or None)
    return proc.returncode, {**history(root, env)[0], "stderr": proc.stderr, "stdout": proc.stdout}


def deployment(root: Path, env: str) -> Any:
    from conveyor.deploy import local
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        return local.deployment(project.metadata, env)


def url(root: Path, env: str) -> str:
    found = deployment(root, env)
    assert found is not None, f"{env} was never started"
    return str(found.url)


def observed(root: Path, env: str) -> dict[str, Any]:
    found = deployment(root, env)
    return found.observed if found is not None else {}


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def serving(root: Path, env: str, version: int) -> bool:
    """The server reports ``version`` live, no candidate, and has caught up with the state."""
    generation = desired(root, env).generation
    seen = observed(root, env)
    return (
        seen.get("generation") == generation
        and (seen.get("live") or {}).get("version") == version
        and (seen.get("candidate") or {}).get("version") is None
    )


def stop_environments(root: Path) -> None:
    """Stop every environment's server; SIGKILL whatever process of theirs is left."""
    from conveyor.deploy import local
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        for env in project.config.environments:
            found = local.deployment(project.metadata, env.name)
            local.stop(project, env.name)
            for pid in (found.supervisor_pid, found.server_pid) if found else ():
                if pid is not None and _ours(pid, root):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)


def _ours(pid: int, root: Path) -> bool:
    """Whether ``pid`` is still a serving process of the project at ``root``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    roots = {str(root).encode(), str(root.resolve()).encode()}
    return b"conveyor.deploy" in b" ".join(cmdline) and bool(roots & set(cmdline))


@contextlib.contextmanager
def environments_stopped(root: Path) -> Iterator[Path]:
    try:
        yield root
    finally:
        stop_environments(root)


# -- traffic ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    at: int  # the request's sequence number
    status: int  # 0 when no HTTP response came back
    version: str | None
    error: str = ""


class Traffic:
    """``workers`` threads sending v2 inference requests of one to three rows to ``url`` in
    a closed loop, each recording the status and the version that answered.

    ``pause_s`` between a worker's requests keeps the rate moderate, so the server has time
    for its reconciling."""

    def __init__(self, url: str, *, workers: int = 4, pause_s: float = 0.005) -> None:
        self.url = url.rstrip("/") + "/v2/models/pk/infer"
        self.workers = workers
        self.pause_s = pause_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = 0
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"traffic-{i}", daemon=True)
            for i in range(workers)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def mark(self) -> int:
        """The sequence number the next request will have."""
        with self._lock:
            return self._seq

    def since(self, mark: int, until: int | None = None) -> list[Answer]:
        """The answers to requests ``mark`` .. ``until`` (excluded; all when None)."""
        with self._lock:
            return [a for a in self.answers if a.at >= mark and (until is None or a.at < until)]

    def wait_for(self, count: int, mark: int = 0) -> None:
        wait_until(lambda: len(self.since(mark)) >= count, f"{count} requests were answered")

    def summary(self, mark: int = 0, until: int | None = None) -> dict[str, Any]:
        answers = self.since(mark, until)
        failed = [a for a in answers if a.status != 200]
        return {
            "requests": len(answers),
            "errors": len(failed),
            "by_version": dict(Counter(a.version for a in answers if a.status == 200)),
            "first_errors": [f"{a.status} {a.error}" for a in failed[:5]],
        }

    def _loop(self, worker: int) -> None:
        rng = random.Random(worker)
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                with self._lock:
                    seq = self._seq
                    self._seq += 1
                self._record(seq, client, rng)
                time.sleep(self.pause_s)

    def _record(self, seq: int, client: httpx.Client, rng: random.Random) -> None:
        rows = rng.randint(1, 3)
        body = {
            "inputs": [
                {"name": "a", "shape": [rows], "datatype": "FP64",
                 "data": [rng.gauss(0, 1) for _ in range(rows)]},
                {"name": "b", "shape": [rows], "datatype": "FP64",
                 "data": [rng.gauss(0, 1) for _ in range(rows)]},
                {"name": "k", "shape": [rows], "datatype": "INT64",
                 "data": [rng.randint(0, 4) for _ in range(rows)]},
            ]
        }  # fmt: skip
        try:
            response = client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            answer = Answer(seq, 0, None, f"{type(exc).__name__}: {exc}")
        else:
            version = None
            if response.status_code == 200:
                version = str(response.json().get("model_version"))
            answer = Answer(seq, response.status_code, version, response.text[:200])
        with self._lock:
            self.answers.append(answer)
