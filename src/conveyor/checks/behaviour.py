"""Behavioural checks of a model: invariance, directional expectation, minimum functionality.

Each takes a fitted model (anything with ``predict_proba`` or ``predict``) and rows, and
returns a :class:`~conveyor.core.checks.CheckResult`. The score of a row is the
positive-class probability of a binary classifier, every class's probability of a
multiclass one (a change is then the largest change over the classes), or the prediction of
a regressor. A check that is asked nothing (empty rows, an unknown column) raises
:class:`~conveyor.errors.UsageError`; a model that fails or returns NaN on the rows, or a
perturbation that changes no value, gives a result that did not pass, saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.bootstrap import FloatArray
from conveyor.checks.evaluation import json_scalar, model_output
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import ConfigError, UsageError, did_you_mean

Method = Literal["auto", "predict_proba", "predict"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """A minimum-functionality case: one input row and what the model must say about it."""

    name: str
    inputs: Mapping[str, Any]
    label: Any = None  # expected ``predict`` output
    min_score: float | None = None  # expected score range (inclusive)
    max_score: float | None = None


def _method(model: Any, predict: Method) -> Literal["predict_proba", "predict"]:
    if predict != "auto":
        return predict
    return "predict_proba" if callable(getattr(model, "predict_proba", None)) else "predict"


def _scores(model: Any, X: pd.DataFrame, method: Method, what: str) -> FloatArray | str:
    """The score of each row, or why the model did not give one."""
    chosen = _method(model, method)
    try:
        raw = model_output(model, X, chosen)
        out = np.asarray(raw, dtype=np.float64)
    except UsageError as exc:
        return f"on the {what} rows: {exc.message}"
    except (TypeError, ValueError):
        return f"{chosen}() returned non-numeric values on the {what} rows; use predict_proba"
    if out.ndim == 2 and out.shape[1] <= 2:
        out = out[:, -1]
    if out.ndim not in (1, 2) or out.shape[0] != len(X):
        return f"{chosen}() returned shape {out.shape} for {len(X)} {what} rows"
    bad = int((~np.isfinite(out)).reshape(len(X), -1).any(axis=1).sum())
    if bad:
        return f"{chosen}() returned NaN or infinite scores for {bad} of the {what} rows"
    return out


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
    change, which = found
    violations = int((change > epsilon).sum())
    top = np.argsort(-change, kind="stable")[: max(examples, 0)]
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
        details={
            "epsilon": epsilon,
            "worst_rows": [_worst_row(X, column, plans, which[r], change[r], r) for r in top],
        },
    )


def _worst_row(
    X: pd.DataFrame, column: str, plans: list[tuple[str, pd.DataFrame]], i: Any, change: Any, r: Any
) -> dict[str, Any]:
    what, changed = plans[int(i)]
    return {
        "row": json_scalar(X.index[r]),
        "change": float(change),
        "perturbation": what,
        "value_before": json_scalar(X[column].iloc[r]),
        "value_after": json_scalar(changed[column].iloc[r]),
    }


def _largest_changes(
    model: Any, X: pd.DataFrame, plans: list[tuple[str, pd.DataFrame]], predict: Method
) -> tuple[FloatArray, npt.NDArray[np.intp]] | str:
    """Per row, the largest score change over the perturbations, and which one it was."""
    base = _scores(model, X, predict, "original")
    if isinstance(base, str):
        return base
    moves: list[FloatArray] = []
    for _, changed in plans:
        moved = _scores(model, changed, predict, "perturbed")
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
    base = _scores(model, rows, predict, "original")
    moved = _scores(model, rows.assign(**{column: rows[column] + delta}), predict, "shifted")
    if isinstance(base, str) or isinstance(moved, str):
        return _failed(check, f"model failed {base if isinstance(base, str) else moved}")
    if base.ndim != 1:
        raise UsageError(
            "a directional check needs one score per row; this model gives class probabilities",
            hint="check a binary classifier or a regressor, or wrap the model to give one score",
        )
    change = moved - base
    wrong = -change if expect == "non_decreasing" else change
    bad = wrong > tolerance
    top = np.argsort(-wrong, kind="stable")[: max(examples, 0)]
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
        message=_direction_message(
            column, delta, expect, wrong[bad], rows.shape[0], int((~present).sum())
        ),
        details={
            "delta": delta,
            "expect": expect,
            "tolerance": tolerance,
            "examples": [
                {
                    "row": json_scalar(rows.index[r]),
                    "value": json_scalar(rows[column].iloc[r]),
                    "score_before": float(base[r]),
                    "score_after": float(moved[r]),
                }
                for r in top[bad[top]]
            ],
        },
    )


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
        found = _scores(model, X, predict, "case")
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


# --- configuration ------------------------------------------------------------------------

_KEYS = {
    "invariance": (("column",), ("epsilon", "values", "seed", "predict", "name")),
    "direction": (("column", "delta", "expect"), ("tolerance", "predict", "name")),
    "cases": (("name", "inputs"), ("label", "min_score", "max_score")),
}


_NUMBER = ((int, float), "a number")
_TYPES: dict[str, tuple[Any, str]] = {
    "column": (str, "a column name"),
    "name": (str, "a string"),
    "predict": (str, "predict_proba or predict"),
    "values": (list, "a list"),
    "inputs": (Mapping, "a mapping of column to value"),
    "seed": (int, "a whole number"),
    **{key: _NUMBER for key in ("epsilon", "delta", "tolerance", "min_score", "max_score")},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviourSpec:
    """The ``checks.model.behaviour`` block: keyword arguments of each check to run."""

    invariance: tuple[dict[str, Any], ...] = ()
    direction: tuple[dict[str, Any], ...] = ()
    cases: tuple[Case, ...] = ()


def _entries(raw: Mapping[str, Any], kind: str, where: str) -> list[dict[str, Any]]:
    required, optional = _KEYS[kind]
    entries = raw.get(kind) or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ConfigError(f"{where}.{kind} must be a list of mappings")
    for i, entry in enumerate(entries):
        for key in entry:
            if key not in required + optional:
                hint = did_you_mean(str(key), required + optional)
                raise ConfigError(f"{where}.{kind}[{i}]: unknown key {key!r}", hint=hint)
        missing = [key for key in required if key not in entry]
        if missing:
            raise ConfigError(f"{where}.{kind}[{i}]: {', '.join(missing)} missing")
        for key, value in entry.items():
            expected = _TYPES.get(key)
            if expected and (isinstance(value, bool) or not isinstance(value, expected[0])):
                raise ConfigError(f"{where}.{kind}[{i}].{key} must be {expected[1]}, not {value!r}")
        if entry.get("expect", "non_decreasing") not in ("non_decreasing", "non_increasing"):
            raise ConfigError(
                f"{where}.{kind}[{i}].expect must be non_decreasing or non_increasing"
            )
    return [dict(e) for e in entries]


def parse_behaviour(raw: Any, where: str = "checks.model.behaviour") -> BehaviourSpec:
    """``{invariance: [{column: gender, epsilon: 0.01}], direction: [...], cases: [...]}``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            hint = did_you_mean(str(key), list(_KEYS)) or f"known keys: {', '.join(_KEYS)}"
            raise ConfigError(f"{where}: unknown key {key!r}", hint=hint)
    return BehaviourSpec(
        invariance=tuple(_entries(raw, "invariance", where)),
        direction=tuple(_entries(raw, "direction", where)),
        cases=tuple(Case(**c) for c in _entries(raw, "cases", where)),
    )


def run_behaviour(model: Any, X: pd.DataFrame, spec: BehaviourSpec) -> list[CheckResult]:
    """Every configured behavioural check of ``model`` on the rows ``X``."""
    results = [check_invariance(model, X, **kwargs) for kwargs in spec.invariance]
    results += [check_direction(model, X, **kwargs) for kwargs in spec.direction]
    if spec.cases:
        results.append(check_minimum_functionality(model, spec.cases))
    return results
