"""Built-in data steps: validate a table against a schema, profile it, measure drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from conveyor.core.gate import gate
from conveyor.core.step import step
from conveyor.steps.builtin import builtin, check_policy, project_file


def _check_validate(params: dict[str, Any]) -> None:
    from conveyor.checks.schema import load_schema

    check_policy("validate_data", params["policy"])
    # A missing or malformed schema stops the run before anything executes.
    load_schema(project_file(params["schema"], "schema", "checks.data.schema"))


@step(name="validate_data")
def _validate_data(
    data: pd.DataFrame, schema: str = "", policy: str = "blocking"
) -> dict[str, Any]:
    """Validate ``data`` against the schema file; every anomaly is a recorded check."""
    from conveyor.checks.schema import load_schema
    from conveyor.checks.validation import validate

    report = validate(data, load_schema(project_file(schema, "schema", "checks.data.schema")))
    gate(report.check_results(), name="data", policy=policy)
    result: dict[str, Any] = {"schema": "conveyor.validation/1", **report.to_dict()}
    return result


validate_data = builtin(
    _validate_data,
    defaults_from={"schema": "checks.data.schema", "policy": "checks.data.policy"},
    check_params=_check_validate,
    file_params=("schema",),
)


@step(name="infer_schema")
def _infer_schema(data: pd.DataFrame, max_categories: int = 50) -> Path:
    """The schema of ``data`` as a versioned, human-editable YAML file artifact."""
    import tempfile

    from conveyor.checks.schema import InferOptions, infer_schema, save_schema

    path = Path(tempfile.mkdtemp(prefix="conveyor-schema-")) / "schema.yaml"
    save_schema(infer_schema(data, InferOptions(max_categories=max_categories)), path)
    return path


infer_schema = _infer_schema


@step(name="profile_data")
def _profile_data(data: pd.DataFrame) -> dict[str, Any]:
    """A reference profile of ``data`` (histograms, quantiles, category counts)."""
    from conveyor.checks.profile import profile

    result: dict[str, Any] = profile(data).to_json()
    return result  # a Profile's JSON, read back by check_drift and `conveyor data drift`


profile_data = _profile_data


def _check_drift_params(params: dict[str, Any]) -> None:
    from conveyor.checks.drift_config import drift_options

    check_policy("check_drift", params["policy"])
    drift_options(params["options"])


@step(name="check_drift")
def _check_drift(
    reference: Any,
    current: pd.DataFrame,
    options: dict[str, Any] | None = None,
    policy: str = "blocking",
) -> dict[str, Any]:
    """Drift of ``current`` against ``reference`` (a table, or a profile from profile_data)."""
    from conveyor.checks.drift import drift
    from conveyor.checks.drift_config import drift_options
    from conveyor.checks.profile import Profile

    ref = Profile.from_json(reference) if isinstance(reference, dict) else reference
    report = drift(ref, current, drift_options(options))
    gate(report.check_results(), name="drift", policy=policy)
    result: dict[str, Any] = {"schema": "conveyor.drift/1", **report.to_json()}
    return result


check_drift = builtin(
    _check_drift,
    defaults_from={"options": "checks.data.drift", "policy": "checks.data.policy"},
    check_params=_check_drift_params,
)
