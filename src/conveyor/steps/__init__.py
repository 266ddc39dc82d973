"""Built-in steps: data and model checks as pipeline steps, under a gate policy.

Use them inside a ``@pipeline`` like any step::

    from conveyor.steps import validate_data, validate_model

Their settings default to the ``checks:`` section of ``conveyor.yaml`` and can be overridden
like any param (``-p validate_data.policy=warning``). A blocking gate that fails fails the
step, and so the run, with every reason; every check result is recorded on the run.
"""

from __future__ import annotations

from conveyor.steps.data import check_drift, infer_schema, profile_data, validate_data
from conveyor.steps.model import evaluate_model, validate_model
from conveyor.steps.register import register

__all__ = [
    "check_drift",
    "evaluate_model",
    "infer_schema",
    "profile_data",
    "register",
    "validate_data",
    "validate_model",
]
