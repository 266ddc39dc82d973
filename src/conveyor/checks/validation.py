"""Validating data against a schema: every anomaly of every column, vectorised.

:func:`validate` returns a :class:`ValidationReport` listing each :class:`Anomaly` (a missing
or extra column, a wrong type, too many nulls, values out of range, unseen categories,
repeated values in a unique column, infinities). Nothing is raised for bad data: the report is
the result, and :meth:`ValidationReport.check_results` turns it into the
:class:`~conveyor.core.checks.CheckResult` values a gate decides on.

The report is defined in :mod:`conveyor.checks.validation_report` and the checks of one
column in :mod:`conveyor.checks.column_checks`; the report's names are re-exported here.
"""

from __future__ import annotations

from typing import Any

from conveyor.checks.column_checks import (
    MAX_CATEGORIES_SHOWN,
    MAX_EXAMPLES,
    ColumnCheck,
    anomaly,
)
from conveyor.checks.datasets import as_frame, column_names
from conveyor.checks.schema_types import AnomalyKind, Schema
from conveyor.checks.validation_report import HINTS, Anomaly, Example, ValidationReport

__all__ = [
    "HINTS",
    "MAX_CATEGORIES_SHOWN",
    "MAX_EXAMPLES",
    "Anomaly",
    "Example",
    "ValidationReport",
    "validate",
]


def validate(data: Any, schema: Schema) -> ValidationReport:
    """Check ``data`` (a DataFrame or pyarrow Table) against ``schema``; list every anomaly.

    Column order does not matter. Raises UsageError only when the data cannot be checked at
    all (not a table, or two columns with one name).
    """
    frame = as_frame(data)
    names = column_names(frame)
    position = {n: i for i, n in enumerate(names)}
    anomalies: list[Anomaly] = []
    metrics: dict[str, dict[str, float]] = {}
    checked: list[str] = []
    for column in schema.columns:
        if column.name not in position:
            message = "in the schema but not in the data"
            anomalies.append(anomaly(schema, column, AnomalyKind.MISSING_COLUMN, message))
            continue
        check = ColumnCheck(schema, column, frame.iloc[:, position[column.name]])
        anomalies += check.run()
        metrics[column.name] = check.metrics
        checked.append(column.name)
    expected = set(schema.names)
    for extra in (n for n in names if n not in expected):
        message = "in the data but not in the schema"
        anomalies.append(anomaly(schema, None, AnomalyKind.EXTRA_COLUMN, message, name=extra))
    return ValidationReport(
        rows=len(frame),
        columns=tuple(names),
        checked=tuple(checked),
        anomalies=tuple(anomalies),
        metrics=metrics,
    )
