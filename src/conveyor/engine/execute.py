"""Executing one step: load inputs, call the function (or run the command), store outputs.

The same function runs in-process and in worker processes, so a task carries only plain,
picklable data: references, params and artifact records.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.core import context
from conveyor.core.checks import CheckResult
from conveyor.core.contracts import Contract
from conveyor.core.records import ArtifactInfo
from conveyor.core.step import Step
from conveyor.errors import ConveyorError
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.blobs import BlobStore
from conveyor.store.materializers import MaterializeContext


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTask:
    run_id: str
    name: str
    module: str | None
    qualname: str | None
    cmd: tuple[str, ...] | None
    params: dict[str, Any]
    inputs: dict[str, ArtifactInfo]
    outputs: tuple[str, ...]
    output_kind: str
    root: str
    artifacts_url: str
    cache_dir: str
    trust_pickle: bool = False
    skops_types: tuple[str, ...] = ()
    contracts: dict[str, Contract] = field(default_factory=dict)
    refs: dict[str, ArtifactInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    outputs: dict[str, ArtifactInfo] = field(default_factory=dict)
    logs: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0


class StepOutputError(Exception):
    """A step did not produce what it declared."""


_STORES: dict[tuple[str, str, bool, tuple[str, ...]], ArtifactStore] = {}


def artifact_store_for(task: StepTask) -> ArtifactStore:
    key = (task.artifacts_url, task.cache_dir, task.trust_pickle, task.skops_types)
    store = _STORES.get(key)
    if store is None:
        ctx = MaterializeContext(trust_pickle=task.trust_pickle, skops_types=task.skops_types)
        store = ArtifactStore(BlobStore(task.artifacts_url, Path(task.cache_dir)), ctx)
        _STORES[key] = store
    return store


def resolve_function(module: str, qualname: str, root: str) -> Callable[..., Any]:
    if root not in sys.path:
        sys.path.insert(0, root)
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, Step):
        obj = obj.definition.func
    return obj  # type: ignore[no-any-return]


class _Capture(logging.Handler):
    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record) + "\n")


def run_task(
    task: StepTask, func: Callable[..., Any] | None = None, store: ArtifactStore | None = None
) -> TaskResult:
    """Execute ``task``; never raises for a failure of the step itself."""
    store = store or artifact_store_for(task)
    sink = io.StringIO()
    # Created only by loaders that need a directory (files, directories); most steps never do.
    scratch = Path(tempfile.gettempdir()) / f"conveyor-{task.name}-{uuid.uuid4().hex}"
    ctx = context.StepContext(step=task.name, run_id=task.run_id, root=task.root)
    ctx.loader = lambda digest: _load_ref(task, store, digest, scratch)
    ctx.inputs = {arg: info.digest for arg, info in task.inputs.items()}
    token = context.enter(ctx)
    started = time.perf_counter()
    handler = _Capture(sink)
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            if task.cmd is not None:
                outputs = _run_cmd(task, store, sink)
            else:
                outputs = _run_python(task, func, store, scratch)
        return TaskResult(
            outputs=outputs,
            logs=sink.getvalue(),
            metrics=dict(ctx.metrics),
            checks=list(ctx.checks),
            duration_s=time.perf_counter() - started,
        )
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure of user code is recorded
        if isinstance(exc, (StepOutputError, ConveyorError)):
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = "".join(traceback.format_exception(exc))
        return TaskResult(
            logs=sink.getvalue(),
            checks=list(ctx.checks),  # a failed gate's results are kept with its error
            error=error,
            duration_s=time.perf_counter() - started,
        )
    finally:
        root_logger.removeHandler(handler)
        context.leave(token)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _load_ref(task: StepTask, store: ArtifactStore, digest: str, scratch: Path) -> Any:
    info = task.refs.get(digest)
    if info is None:
        raise ConveyorError(
            f"step '{task.name}' loads artifact {digest[:12]}, which none of its ArtifactRef "
            "params names",
            hint="load only the artifacts named by the step's ArtifactRef params",
        )
    return store.load(info, scratch / "refs" / digest[:12])


def _run_python(
    task: StepTask, func: Callable[..., Any] | None, store: ArtifactStore, scratch: Path
) -> dict[str, ArtifactInfo]:
    if func is None:
        assert task.module and task.qualname
        func = resolve_function(task.module, task.qualname, task.root)
    kwargs = dict(task.params)
    for arg, info in task.inputs.items():
        kwargs[arg] = store.load(info, scratch / arg)
    value = func(**kwargs)
    return _store_outputs(task, value, store)


def _store_outputs(task: StepTask, value: Any, store: ArtifactStore) -> dict[str, ArtifactInfo]:
    names = task.outputs
    if task.output_kind == "none":
        if value is not None:
            raise StepOutputError(
                f"step '{task.name}' is annotated '-> None' but returned a "
                f"{type(value).__name__}; annotate its return type to store it"
            )
        return {}
    if task.output_kind == "single":
        values = [value]
    else:
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            got = (
                f"{len(value)} values"
                if isinstance(value, (tuple, list))
                else f"a {type(value).__name__}"
            )
            raise StepOutputError(
                f"step '{task.name}' declares {len(names)} outputs {list(names)} but returned {got}"
            )
        values = list(value)
    _check_contracts(task, dict(zip(names, values, strict=True)))
    result: dict[str, ArtifactInfo] = {}
    for name, item in zip(names, values, strict=False):
        if item is None:
            raise StepOutputError(
                f"step '{task.name}' did not produce its output '{name}' (it returned None)"
            )
        result[name] = store.save(item)
    return result


def _check_contracts(task: StepTask, values: dict[str, Any]) -> None:
    """Check every output with a contract before any is stored; fail the step on a violation."""
    if not task.contracts:
        return
    from conveyor.checks.contracts import check_output

    results = [
        check_output(contract, values[name], Path(task.root))
        for name, contract in task.contracts.items()
        if values.get(name) is not None
    ]
    context.record_checks(results)
    broken = [(task.contracts[r.name.split(":", 1)[1]], r) for r in results if not r.passed]
    if broken:
        lines = "\n".join(
            f"  - output '{c.output}' violates its contract ({c.describe()}): {r.message}"
            for c, r in broken
        )
        raise StepOutputError(f"step '{task.name}' broke its artifact contract:\n{lines}")


_PARAM_RE = re.compile(r"\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")


def render_argv(cmd: tuple[str, ...], params: dict[str, Any]) -> list[str]:
    """Substitute ``{params.NAME}`` inside argv elements. No shell ever sees the result."""

    def value(m: re.Match[str]) -> str:
        v = params[m.group(1)]
        return v if isinstance(v, str) else json.dumps(v)

    return [_PARAM_RE.sub(value, arg) for arg in cmd]


def _run_cmd(task: StepTask, store: ArtifactStore, sink: io.StringIO) -> dict[str, ArtifactInfo]:
    assert task.cmd is not None
    root = Path(task.root)
    for out in task.outputs:
        target = root / out
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    argv = render_argv(task.cmd, task.params)
    try:
        proc = subprocess.run(
            argv,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise StepOutputError(
            f"cmd step '{task.name}': command '{argv[0]}' was not found on PATH"
        ) from None
    sink.write(proc.stdout.decode(errors="replace"))
    if proc.returncode != 0:
        raise StepOutputError(
            f"cmd step '{task.name}': {argv[0]} exited with code {proc.returncode}"
        )
    outputs: dict[str, ArtifactInfo] = {}
    for out in task.outputs:
        path = root / out
        if not path.exists():
            raise StepOutputError(
                f"cmd step '{task.name}' did not produce its declared output '{out}'"
            )
        outputs[out] = store.save(path)
    return outputs
