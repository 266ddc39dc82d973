"""Conveyor: CI/CD for machine learning.

The authoring API is small: ``@step``, ``@pipeline``, ``cmd_step`` and ``log_metrics``.
Heavier parts (the engine, the stores) load on first use, so importing Conveyor is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.core.checks import CheckResult, Severity
from conveyor.core.context import (
    load_artifact,
    log_metric,
    log_metrics,
    project_root,
    record_checks,
)
from conveyor.core.gate import gate
from conveyor.core.params import ArtifactRef
from conveyor.core.pipeline import StepOutput, cmd_step, pipeline
from conveyor.core.step import step
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.engine.project import open_project
    from conveyor.engine.run import RunOptions, run_pipeline
    from conveyor.store.materializers import Materializer, register_materializer

__version__ = "0.1.0.dev0"

__all__ = [
    "ArtifactRef",
    "CheckResult",
    "ConveyorError",
    "Materializer",
    "RunOptions",
    "Severity",
    "StepOutput",
    "cmd_step",
    "gate",
    "load_artifact",
    "log_metric",
    "log_metrics",
    "open_project",
    "pipeline",
    "project_root",
    "record_checks",
    "register_materializer",
    "run_pipeline",
    "step",
]

_LAZY = {
    "open_project": "conveyor.engine.project",
    "RunOptions": "conveyor.engine.run",
    "run_pipeline": "conveyor.engine.run",
    "Materializer": "conveyor.store.materializers",
    "register_materializer": "conveyor.store.materializers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
