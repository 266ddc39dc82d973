"""Checking a step output against its contract (see conveyor.core.contracts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.core.checks import CheckResult
from conveyor.core.contracts import Contract


def check_output(contract: Contract, value: Any, root: Path) -> CheckResult:
    """One artifact CheckResult: passed, or the first violations with the numbers."""
    name = f"contract:{contract.output}"
    problems = _problems(contract, value, root)
    return CheckResult(
        name=name,
        kind="artifact",
        passed=not problems,
        message="; ".join(problems[:5]) if problems else f"satisfies {contract.describe()}",
        details={"contract": contract.to_json(), "violations": problems},
    )


def _problems(contract: Contract, value: Any, root: Path) -> list[str]:
    if contract.kind == "table":
        return _table(contract, value, root)
    if contract.kind == "array":
        return _array(contract, value)
    return _mapping(contract, value)


def _table(contract: Contract, value: Any, root: Path) -> list[str]:
    import pandas as pd

    if type(value).__module__.startswith("pyarrow"):
        value = value.to_pandas()
    if not isinstance(value, pd.DataFrame):
        return [f"expected a table, got {type(value).__name__}"]
    problems = []
    if contract.columns:
        missing = [c for c in contract.columns if c not in value.columns]
        if missing:
            problems.append(f"missing columns {missing}")
    if contract.min_rows is not None and len(value) < contract.min_rows:
        problems.append(f"{len(value)} rows, fewer than {contract.min_rows}")
    if contract.schema:
        from conveyor.checks.schema import load_schema
        from conveyor.checks.validation import validate

        report = validate(value, load_schema(root / contract.schema))
        problems += [
            f"{a.column}: {a.message}" for a in report.anomalies if str(a.severity) == "error"
        ]
    return problems


def _array(contract: Contract, value: Any) -> list[str]:
    import numpy as np

    if not isinstance(value, np.ndarray):
        return [f"expected a numpy array, got {type(value).__name__}"]
    problems = []
    if contract.shape is not None:
        expected = contract.shape
        fits = len(expected) == value.ndim and all(
            e is None or e == d for e, d in zip(expected, value.shape, strict=True)
        )
        if not fits:
            shown = ["*" if e is None else e for e in expected]
            problems.append(f"shape {list(value.shape)} does not match {shown}")
    if contract.dtype and value.dtype != np.dtype(contract.dtype):
        problems.append(f"dtype {value.dtype}, expected {contract.dtype}")
    return problems


def _mapping(contract: Contract, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"expected a mapping, got {type(value).__name__}"]
    missing = [k for k in contract.keys or () if k not in value]
    return [f"missing keys {missing}"] if missing else []
