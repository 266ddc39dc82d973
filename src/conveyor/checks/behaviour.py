"""Behavioural checks of a model: invariance, directional expectation, minimum functionality.

Each takes a fitted model (anything with ``predict_proba`` or ``predict``) and rows, and
returns a :class:`~conveyor.core.checks.CheckResult`. The score of a row is the
positive-class probability of a binary classifier, every class's probability of a
multiclass one (a change is then the largest change over the classes), or the prediction of
a regressor. A check that is asked nothing (empty rows, an unknown column) raises
:class:`~conveyor.errors.UsageError`; a model that fails or returns NaN on the rows, or a
perturbation that changes no value, gives a result that did not pass, saying why.

:class:`Case`, :class:`BehaviourSpec` and :func:`parse_behaviour` (the configuration block)
are defined in :mod:`conveyor.checks.behaviour_spec` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.behaviour_spec import BehaviourSpec, Case, parse_behaviour
from conveyor.checks.evaluation_report import json_scalar
from conveyor.checks.model_output import Method, model_output, row_scores
from conveyor.checks.scored import FloatArray
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import UsageError, did_you_mean

__all__ = [
    "BehaviourSpec",
    "Case",
    "Method",
    "check_direction",
    "check_invariance",
    "check_minimum_functionality",
    "parse_behaviour",
    "run_behaviour",
]


def _rows(X: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise UsageError(f"rows must be a pandas DataFrame, not {type(X).__name__}")
    if X.empty:
        raise UsageError("no rows to check: the DataFrame is empty")
    if column is not None and column not in X.columns:
        hint = did_you_mean(column, [str(c) for c in X.columns])
        raise UsageError(f"column {column!r} is not in the rows", hint=hint)
    return X


def _failed(name: str, message: str, severity: Severity = Severity.ERROR) -> CheckResult:
    return CheckResult(name=name, kind="model", passed=False, severity=severity, message=message)


# --- invariance ---------------------------------------------------------------------------


def _perturbations(
    X: pd.DataFrame,
    column: str,
    values: Sequence[Any] | None,
    transform: Callable[[pd.Series], pd.Series] | None,
    seed: int,
) -> list[tuple[str, pd.DataFrame]]:
    if values is not None and transform is not None:
        raise UsageError("give values or transform, not both")
    if values is not None:
        if not len(values):
            raise UsageError("values is empty: there is nothing to replace the column with")
        return [(f"{column!r} set to {v!r}", X.assign(**{column: v})) for v in values]
    if transform is not None:
        return [(f"{column!r} transformed", X.assign(**{column: transform(X[column].copy())}))]
    order = np.random.default_rng(seed).permutation(len(X))
    shuffled = X[column].to_numpy()[order]
    return [(f"{column!r} shuffled", X.assign(**{column: shuffled}))]


def _changed(before: pd.Series, after: pd.Series) -> int:
    a, b = before.reset_index(drop=True), pd.Series(after).reset_index(drop=True)
    return int((~(a.eq(b) | (a.isna() & b.isna()))).sum())


def check_invariance(
    model: Any,
    X: pd.DataFrame,
    column: str,
    *,
    epsilon: float = 0.01,
    values: Sequence[Any] | None = None,
    transform: Callable[[pd.Series], pd.Series] | None = None,
    predict: Method = "auto",
    seed: int = 0,
    examples: int = 5,
    name: str | None = None,
) -> CheckResult:
    """Changing ``column`` moves no row's score by more than ``epsilon``.

    The column is shuffled across rows (seeded), set to each of ``values`` in turn, or
    replaced by ``transform(X[column])``. Reports the max and mean change and the worst rows.
    """
    check = name or f"invariance:{column}"
    plans = _perturbations(_rows(X, column), column, values, transform, seed)
    if sum(_changed(X[column], changed[column]) for _, changed in plans) == 0:
        what = plans[0][0]
        return _failed(check, f"{what} changed no value: nothing was checked", Severity.WARNING)
    found = _largest_changes(model, X, plans, predict)
    if isinstance(found, str):
        return _failed(check, f"model failed {found}")
    change = found[0]
    violations = int((change > epsilon).sum())
    return CheckResult(
        name=check,
        kind="model",
        passed=violations == 0,
        metrics={
            "max_change": float(change.max()),
            "mean_change": float(change.mean()),
            "violations": float(violations),
            "rows": float(len(X)),
        },
        message=_invariance_message(plans[0][0], change, violations, epsilon),
        details={"epsilon": epsilon, "worst_rows": _worst_rows(X, column, plans, found, examples)},
    )


def _worst_rows(
    X: pd.DataFrame,
    column: str,
    plans: list[tuple[str, pd.DataFrame]],
    found: tuple[FloatArray, npt.NDArray[np.intp]],
    examples: int,
) -> list[dict[str, Any]]:
    """The ``examples`` rows whose score moved most, and the perturbation that moved it."""
    change, which = found
    worst = []
    for r in np.argsort(-change, kind="stable")[: max(examples, 0)]:
        what, changed = plans[int(which[r])]
        worst.append(
            {
                "row": json_scalar(X.index[r]),
                "change": float(change[r]),
                "perturbation": what,
                "value_before": json_scalar(X[column].iloc[r]),
                "value_after": json_scalar(changed[column].iloc[r]),
            }
        )
    return worst


def _largest_changes(
    model: Any, X: pd.DataFrame, plans: list[tuple[str, pd.DataFrame]], predict: Method
) -> tuple[FloatArray, npt.NDArray[np.intp]] | str:
    """Per row, the largest score change over the perturbations, and which one it was."""
    base = row_scores(model, X, predict, "original")
    if isinstance(base, str):
        return base
    moves: list[FloatArray] = []
    for _, changed in plans:
        moved = row_scores(model, changed, predict, "perturbed")
        if isinstance(moved, str):
            return moved
        moves.append(np.abs(moved - base).reshape(len(X), -1).max(axis=1))
    return np.max(moves, axis=0), np.argmax(moves, axis=0)


def _invariance_message(what: str, worst: FloatArray, violations: int, epsilon: float) -> str:
    size = f"up to {worst.max():.4g} (mean {worst.mean():.4g}) with {what}"
    if violations:
        return (
            f"scores change by {size}: {violations} of {worst.size} rows by more than {epsilon:g}"
        )
    return f"scores change by {size}: within {epsilon:g}"


# --- directional expectation --------------------------------------------------------------


def check_direction(
    model: Any,
    X: pd.DataFrame,
    column: str,
    *,
    delta: float,
    expect: Literal["non_decreasing", "non_increasing"],
    tolerance: float = 1e-9,
    predict: Method = "auto",
    examples: int = 5,
    name: str | None = None,
) -> CheckResult:
    """Adding ``delta`` to ``column`` never lowers (``non_decreasing``) or never raises
    (``non_increasing``) the score by more than ``tolerance``. Rows where the column is
    missing are not checked."""
    check = name or f"direction:{column}"
    present = _shiftable(X, column, delta, expect)
    if not present.any():
        return _failed(check, f"{column!r} is missing on every row: nothing was checked")
    rows = X[present]
    found = _shifted_scores(model, rows, column, delta, predict)
    if isinstance(found, str):
        return _failed(check, f"model failed {found}")
    base, moved = found
    change = moved - base
    wrong = -change if expect == "non_decreasing" else change
    bad = wrong > tolerance
    worst = np.argsort(-wrong, kind="stable")[: max(examples, 0)]
    shown = _direction_examples(rows, column, found, worst[bad[worst]])
    missing = int((~present).sum())
    return CheckResult(
        name=check,
        kind="model",
        passed=not bad.any(),
        metrics={
            "violations": float(bad.sum()),
            "rows": float(rows.shape[0]),
            "max_violation": float(max(wrong.max(), 0.0)),
            "mean_change": float(change.mean()),
        },
        message=_direction_message(column, delta, expect, wrong[bad], rows.shape[0], missing),
        details={"delta": delta, "expect": expect, "tolerance": tolerance, "examples": shown},
    )


def _shifted_scores(
    model: Any, rows: pd.DataFrame, column: str, delta: float, predict: Method
) -> tuple[FloatArray, FloatArray] | str:
    """One score per row before and after adding ``delta`` to ``column``, or why there is none."""
    base = row_scores(model, rows, predict, "original")
    moved = row_scores(model, rows.assign(**{column: rows[column] + delta}), predict, "shifted")
    if isinstance(base, str):
        return base
    if isinstance(moved, str):
        return moved
    if base.ndim != 1:
        raise UsageError(
            "a directional check needs one score per row; this model gives class probabilities",
            hint="check a binary classifier or a regressor, or wrap the model to give one score",
        )
    return base, moved


def _direction_examples(
    rows: pd.DataFrame,
    column: str,
    scores: tuple[FloatArray, FloatArray],
    which: npt.NDArray[np.intp],
) -> list[dict[str, Any]]:
    """The rows ``which`` (positions in ``rows``) with their value and scores."""
    base, moved = scores
    return [
        {
            "row": json_scalar(rows.index[r]),
            "value": json_scalar(rows[column].iloc[r]),
            "score_before": float(base[r]),
            "score_after": float(moved[r]),
        }
        for r in which
    ]


def _shiftable(X: pd.DataFrame, column: str, delta: float, expect: str) -> npt.NDArray[np.bool_]:
    """Which rows can be shifted; UsageError when the check is asked something impossible."""
    series = _rows(X, column)[column]
    if expect not in ("non_decreasing", "non_increasing"):
        raise UsageError(f"expect must be 'non_decreasing' or 'non_increasing', not {expect!r}")
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        raise UsageError(f"column {column!r} is not numeric ({series.dtype}): it cannot be raised")
    if not np.isfinite(delta) or delta == 0:
        raise UsageError(f"delta must be a non-zero number, not {delta}")
    return series.notna().to_numpy()


def _direction_message(
    column: str, delta: float, expect: str, wrong: FloatArray, rows: int, missing: int
) -> str:
    verb = f"{'raising' if delta > 0 else 'lowering'} {column!r} by {abs(delta):g}"
    never = "lowers" if expect == "non_decreasing" else "raises"
    if wrong.size:
        found = f"{verb} {never} the score on {wrong.size} of {rows} rows"
        found += f" (worst by {wrong.max():.4g})"
    else:
        found = f"{verb} never {never} the score ({rows} rows)"
    return found + (f"; {missing} rows with {column!r} missing not checked" if missing else "")


# --- minimum functionality ----------------------------------------------------------------


def _case_rows(model: Any, cases: Sequence[Case]) -> pd.DataFrame:
    if not cases:
        raise UsageError("no minimum-functionality cases given")
    for case in cases:
        if case.label is None and case.min_score is None and case.max_score is None:
            raise UsageError(
                f"case {case.name!r} expects nothing",
                hint="give it a label, a min_score or a max_score",
            )
    X = pd.DataFrame([dict(c.inputs) for c in cases])
    wanted = getattr(model, "feature_names_in_", None)
    if wanted is None:
        return X
    for case in cases:
        missing = [str(c) for c in wanted if c not in case.inputs]
        if missing:
            raise UsageError(f"case {case.name!r} lacks model inputs {missing[:10]}")
    return X[list(wanted)]


def _case_failure(case: Case, label: Any, score: float | None) -> str | None:
    got = label.item() if isinstance(label, np.generic) else label
    wrong = []
    if case.label is not None and got != case.label:
        wrong.append(f"expected label {case.label!r}, got {got!r}")
    low = -np.inf if case.min_score is None else case.min_score
    high = np.inf if case.max_score is None else case.max_score
    if score is not None and not low <= score <= high:
        wrong.append(f"expected a score in [{low:g}, {high:g}], got {score:.4g}")
    return f"{case.name!r}: {' and '.join(wrong)}" if wrong else None


def check_minimum_functionality(
    model: Any,
    cases: Sequence[Case],
    *,
    predict: Method = "auto",
    name: str = "minimum_functionality",
) -> CheckResult:
    """Every case gets its expected label (from ``predict``) and score range."""
    X = _case_rows(model, cases)
    labels: Any = [None] * len(cases)
    scores: Any = [None] * len(cases)
    if any(c.label is not None for c in cases):
        try:
            labels = model_output(model, X, "predict")
        except UsageError as exc:
            return _failed(name, f"model failed on the cases: {exc.message}")
        if labels.shape[:1] != (len(cases),):
            return _failed(name, f"predict() returned shape {labels.shape} for {len(cases)} cases")
    if any(c.min_score is not None or c.max_score is not None for c in cases):
        found = row_scores(model, X, predict, "case")
        if isinstance(found, str):
            return _failed(name, f"model failed {found}")
        if found.ndim != 1:
            raise UsageError("score ranges need one score per row; this model gives several")
        scores = [float(v) for v in found]
    failures = [
        f
        for c, lab, sc in zip(cases, labels, scores, strict=True)
        if (f := _case_failure(c, lab, sc))
    ]
    passed = len(cases) - len(failures)
    return CheckResult(
        name=name,
        kind="model",
        passed=not failures,
        metrics={"cases": float(len(cases)), "failures": float(len(failures))},
        message="; ".join(failures) if failures else f"all {passed} cases pass",
        details={"failures": failures, "cases": [c.name for c in cases]},
    )


# --- the configured checks ----------------------------------------------------------------


def run_behaviour(model: Any, X: pd.DataFrame, spec: BehaviourSpec) -> list[CheckResult]:
    """Every configured behavioural check of ``model`` on the rows ``X``."""
    results = [check_invariance(model, X, **kwargs) for kwargs in spec.invariance]
    results += [check_direction(model, X, **kwargs) for kwargs in spec.direction]
    if spec.cases:
        results.append(check_minimum_functionality(model, spec.cases))
    return results
