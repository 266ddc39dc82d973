"""ONNX serving is admitted only when both runtimes agree, row by row, and says why not."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
)
from sklearn.svm import LinearSVC

from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import UsageError
from conveyor.registry.onnx import (
    OnnxModel,
    OnnxUnsupported,
    compile_onnx,
    equivalent,
    prove_equivalence,
)
from conveyor.serve.model import OnnxEstimator, ServedModel
from conveyor.serve.signature import Block, Signature

ROWS = 2000


def numeric(n: int = ROWS, features: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {f"x{i}": rng.normal(size=n) for i in range(features)},
        index=pd.RangeIndex(1000, 1000 + n),
    )
    y = (X["x0"] + X["x1"] - X["x2"] + rng.normal(size=n) > 0.3).astype(int)
    return X, y


def with_missing(X: pd.DataFrame, column: str = "x0", share: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    out = X.copy()
    out.loc[rng.random(len(X)) < share, column] = np.nan
    return out


def applicants(n: int = ROWS) -> tuple[pd.DataFrame, pd.Series]:
    """Float, int and text columns (with missing text); string labels."""
    rng = np.random.default_rng(2)
    X = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "children": rng.integers(0, 4, n),
            "region": rng.choice(["north", "south", "east"], n),
        },
        index=pd.RangeIndex(500, 500 + n),
    )
    X.loc[rng.random(n) < 0.05, "region"] = np.nan
    score = (X["income"] - 50) / 10 + (X["region"] == "north") - 0.3 * X["children"]
    return X, (score + rng.normal(size=n) > 0).map({True: "accept", False: "reject"})


def encoded_pipeline() -> Pipeline:
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["region", "children"]),
            ("num", StandardScaler(), ["income"]),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression())])


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


# --- equivalence passes ------------------------------------------------------------------------


def test_logistic_regression_is_equivalent() -> None:
    X, y = numeric()
    model = LogisticRegression().fit(X, y)
    results = prove_equivalence(model, compile_onnx(model, X), X.iloc[:50], X)

    assert equivalent(results)
    checks = by_name(results)
    assert checks["onnx:golden"].metrics["rows_compared"] == 50
    assert checks["onnx:sample"].metrics["rows_compared"] == ROWS
    assert checks["onnx:sample"].metrics["mismatched_labels"] == 0
    assert 0 < checks["onnx:sample"].metrics["max_abs_diff"] < 1e-6  # float32 noise, not zero
    assert all(r.kind == "infra" for r in results)


def test_logistic_regression_refuses_missing_values_which_onnx_would_score() -> None:
    X, y = numeric(features=3)
    model = LogisticRegression().fit(X, y)
    missing = by_name(prove_equivalence(model, compile_onnx(model, X), X[:20], X))

    check = missing["onnx:missing_values"]
    assert check.passed and check.severity == Severity.INFO
    assert check.details["rejected_by_sklearn"] == ["x0", "x1", "x2"]
    assert "validate inputs before serving" in check.message


def test_hist_gradient_boosting_with_missing_values_is_equivalent() -> None:
    X, y = numeric()
    X = with_missing(X)
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(X, y)
    results = prove_equivalence(model, compile_onnx(model, X), X.iloc[:50], X)

    assert equivalent(results), [r.message for r in results]
    missing = by_name(results)["onnx:missing_values"]
    assert missing.metrics["rows_compared"] == 20 * 100  # every column probed
    assert missing.details["rejected_by_sklearn"] == []


def test_pipeline_with_column_transformer_is_equivalent() -> None:
    X, y = applicants()
    model = encoded_pipeline().fit(X, y)
    onnx_bytes = compile_onnx(model, X)
    results = prove_equivalence(model, onnx_bytes, X.iloc[:50], X)

    assert equivalent(results), [r.message for r in results]
    assert OnnxModel(onnx_bytes).kinds == {
        "income": "float",
        "children": "int",
        "region": "string",
    }
    missing = by_name(results)["onnx:missing_values"]
    assert missing.details["rejected_by_sklearn"] == ["income"]  # the scaler passes NaN on
    assert missing.details["int_columns_not_probed"] == ["children"]
    assert missing.metrics["rows_compared"] == 100  # region, missing


# --- equivalence fails, naming rows ------------------------------------------------------------


def test_onnx_of_another_model_fails_naming_the_rows() -> None:
    X, y = numeric()
    model = LogisticRegression().fit(X, y)
    other = LogisticRegression(C=0.001).fit(X, y)
    results = prove_equivalence(model, compile_onnx(other, X), X.iloc[:50], X)

    assert not equivalent(results)
    golden = by_name(results)["onnx:golden"]
    assert not golden.passed
    assert golden.metrics["rows_over_tolerance"] > 0
    worst = golden.details["worst_rows"]
    assert 0 < len(worst) <= 10
    assert all(1000 <= row["index"] < 1050 for row in worst)  # the golden set's own index
    first = worst[0]
    diff = np.abs(np.subtract(first["sklearn"]["scores"], first["onnx"]["scores"])).max()
    assert first["abs_diff"] == pytest.approx(diff, rel=1e-6)
    assert diff > 1e-3
    assert str(first["index"]) in golden.message
    json.dumps(golden.details, allow_nan=False)  # details are recorded as JSON


def test_mismatched_labels_come_first_among_worst_rows() -> None:
    X, y = numeric()
    model = LogisticRegression().fit(X, y)
    other = LogisticRegression(C=0.001).fit(X, y)
    sample = by_name(prove_equivalence(model, compile_onnx(other, X), X[:50], X))["onnx:sample"]

    assert sample.metrics["mismatched_labels"] > 0
    first = sample.details["worst_rows"][0]
    assert first["sklearn"]["label"] != first["onnx"]["label"]


def test_onnx_with_other_columns_fails_instead_of_raising() -> None:
    X, y = numeric(features=5)
    model = LogisticRegression().fit(X, y)
    renamed = X.rename(columns={"x4": "y4"})
    other = compile_onnx(LogisticRegression().fit(renamed, y), renamed)
    results = prove_equivalence(model, other, X[:50], X)

    golden = by_name(results)["onnx:golden"]
    assert not golden.passed
    assert "y4" in golden.message
    assert not equivalent(results)


def test_random_forest_routes_missing_values_differently_in_onnx() -> None:
    # scikit-learn's forests send a missing value down a learned (or the larger) branch;
    # skl2onnx 1.20 does not convert that, and a sample without one would never show it.
    X, y = numeric(features=5)
    model = RandomForestClassifier(n_estimators=21, random_state=0).fit(with_missing(X), y)
    results = by_name(prove_equivalence(model, compile_onnx(model, X), X[:50], X))

    assert results["onnx:sample"].passed  # no missing value in the sample: all agree
    missing = results["onnx:missing_values"]
    assert not missing.passed
    assert missing.metrics["rows_over_tolerance"] > 0
    assert "missing)" in missing.details["worst_rows"][0]["index"]
    assert not equivalent(list(results.values()))


def test_votes_tied_between_classes_are_mismatches_reported_as_ties() -> None:
    # 20 trees can vote 10:10. scikit-learn then predicts the first class; ONNX sums the
    # votes in float32 (0.49999994 against 0.50000006) and may serve the other label.
    X, y = numeric(features=5)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    sample = by_name(prove_equivalence(model, compile_onnx(model, X), X[:50], X))["onnx:sample"]

    assert not sample.passed
    assert sample.metrics["rows_over_tolerance"] == 0
    assert sample.metrics["tied_labels"] == sample.metrics["mismatched_labels"] > 0
    assert "ties between two classes" in sample.message
    row = sample.details["worst_rows"][0]
    assert row["sklearn"]["scores"] == [0.5, 0.5]


# --- shapes and types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["binary", "multiclass", "text labels", "regressor", "no predict_proba"]
)
def test_outputs_have_scikit_learn_shapes_and_types(case: str) -> None:
    X, y = numeric(n=300, features=5)
    if case == "multiclass":
        y = pd.Series(np.digitize(X["x0"], [-0.5, 0.5]), index=X.index)
    model = {
        "binary": lambda: LogisticRegression().fit(X, y),
        "multiclass": lambda: HistGradientBoostingClassifier(max_iter=20).fit(X, y),
        "text labels": lambda: encoded_pipeline().fit(*applicants(300)),
        "regressor": lambda: HistGradientBoostingRegressor(max_iter=20).fit(X, X["x1"] * 100),
        "no predict_proba": lambda: LinearSVC().fit(X, y),
    }[case]()
    if case == "text labels":
        X = applicants(300)[0]
    onnx_model = OnnxModel(compile_onnx(model, X))

    expected, got = model.predict(X), onnx_model.predict(X)
    assert (got.shape, got.dtype) == (expected.shape, expected.dtype)
    if hasattr(model, "predict_proba"):
        expected, got = model.predict_proba(X), onnx_model.predict_proba(X)
        assert (got.shape, got.dtype) == (expected.shape, expected.dtype)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        with pytest.raises(UsageError, match="no predict_proba"):
            onnx_model.predict_proba(X)


def test_one_row_in_any_column_order() -> None:
    X, y = numeric(features=5)
    model = LogisticRegression().fit(X, y)
    onnx_model = OnnxModel(compile_onnx(model, X))
    row = X.iloc[[7]]

    assert onnx_model.predict_proba(row[list(reversed(X.columns))]) == pytest.approx(
        model.predict_proba(row), abs=1e-6
    )
    with pytest.raises(UsageError, match="lack columns.*x3"):
        onnx_model.predict(row.drop(columns="x3"))
    with pytest.raises(UsageError, match="cannot be read as the numbers"):
        onnx_model.predict(row.astype({"x1": object}).assign(x1="high"))


def test_int_column_refuses_what_int64_cannot_hold() -> None:
    X, y = applicants(300)
    onnx_model = OnnxModel(compile_onnx(encoded_pipeline().fit(X, y), X))
    rows = X.iloc[:3].astype({"children": float})

    assert list(onnx_model.predict(rows)) == list(encoded_pipeline().fit(X, y).predict(rows))
    for bad in (np.nan, 1.5):
        rows.loc[rows.index[1], "children"] = bad
        with pytest.raises(UsageError, match="'children' has missing or non-integer values"):
            onnx_model.predict(rows)


def test_model_without_predict_proba_compares_labels() -> None:
    X, y = numeric(features=5)
    model = LinearSVC().fit(X, y)
    onnx_bytes = compile_onnx(model, X)

    with pytest.raises(UsageError, match="no predict_proba") as info:
        prove_equivalence(model, onnx_bytes, X[:50], X)
    assert "predict='predict'" in str(info.value.hint)

    results = prove_equivalence(model, onnx_bytes, X[:50], X, predict="predict")
    assert equivalent(results)
    assert by_name(results)["onnx:sample"].metrics["mismatched_labels"] == 0
    assert "max_abs_diff" not in by_name(results)["onnx:sample"].metrics


def test_session_is_single_threaded_for_serving() -> None:
    X, y = numeric(n=100, features=3)
    onnx_bytes = compile_onnx(LogisticRegression().fit(X, y), X)

    assert OnnxModel(onnx_bytes).session.get_session_options().intra_op_num_threads == 1
    assert OnnxModel(onnx_bytes, threads=2).session.get_session_options().intra_op_num_threads == 2


# --- what cannot be compiled says why ----------------------------------------------------------


def test_estimator_without_converter_is_named() -> None:
    X, y = numeric(n=200, features=3)
    model = make_pipeline(SplineTransformer(), LogisticRegression()).fit(X, y)

    with pytest.raises(OnnxUnsupported) as info:
        compile_onnx(model, X)
    assert "Pipeline > splinetransformer" in str(info.value)
    assert "no converter for SplineTransformer" in str(info.value)
    assert info.value.hint and "serve the scikit-learn model" in info.value.hint


def test_categorical_features_of_hist_gradient_boosting_are_refused() -> None:
    # skl2onnx converts them as numeric splits: the graph would predict differently.
    X, y = numeric(n=300, features=3)
    X["colour"] = pd.Categorical(np.random.default_rng(3).choice(["red", "blue"], 300))
    model = HistGradientBoostingClassifier(max_iter=10).fit(X, y)

    with pytest.raises(OnnxUnsupported, match="categorical features"):
        compile_onnx(model, X)


def test_text_columns_need_a_column_transformer() -> None:
    X, y = applicants(200)
    X = X[["region"]].fillna("none")
    model = make_pipeline(OrdinalEncoder(), LogisticRegression()).fit(X, y)

    with pytest.raises(UsageError, match="text columns") as info:
        compile_onnx(model, X)
    assert "ColumnTransformer" in str(info.value.hint)


def test_unfitted_model_and_foreign_bytes_are_usage_errors() -> None:
    X, _ = numeric(n=10, features=3)
    with pytest.raises(UsageError, match="not fitted"):
        compile_onnx(LogisticRegression(), X)
    with pytest.raises(UsageError, match="not a loadable ONNX model"):
        OnnxModel(b"not onnx")


def test_empty_golden_set_proves_nothing() -> None:
    X, y = numeric(n=100, features=3)
    model = LogisticRegression().fit(X, y)
    with pytest.raises(UsageError, match="golden rows are empty"):
        prove_equivalence(model, compile_onnx(model, X), X.iloc[:0], X)


def test_missing_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = numeric(n=100, features=3)
    model = LogisticRegression().fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # what an absent package looks like

    with pytest.raises(UsageError, match="needs skl2onnx") as info:
        compile_onnx(model, X)
    assert info.value.hint == "pip install 'conveyor-ml[onnx]'"


# --- serving ---------------------------------------------------------------------------------


def test_the_service_feeds_a_one_tensor_model_the_request_matrix() -> None:
    X, y = numeric(features=6)
    model = HistGradientBoostingClassifier(max_iter=30).fit(X, y)
    onnx_bytes = compile_onnx(model, X)
    served = ServedModel(
        name="m",
        version="1",
        estimator=OnnxEstimator(onnx_bytes),
        signature=Signature.from_frame(X),
        method="predict_proba",
        examples=X.head(50),
    )
    assert served.input_form == "numpy"  # no DataFrame per request
    rows = X.tail(20)
    block = served.signature.convert_rows(rows.to_numpy().tolist(), list(rows.columns))
    assert isinstance(block, Block)
    np.testing.assert_array_equal(served.predict(block), OnnxModel(onnx_bytes).predict_proba(rows))

    X, y = applicants()  # one input per column: a matrix cannot feed it
    encoded = OnnxModel(compile_onnx(encoded_pipeline().fit(X, y), X))
    with pytest.raises(TypeError, match="takes a DataFrame of its 3 columns"):
        encoded.predict(np.zeros((1, 3)))
