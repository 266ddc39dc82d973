"""The served model picks the fastest input form that gives the DataFrame path's answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conveyor.errors import UsageError
from conveyor.serve.model import ServedModel
from conveyor.serve.signature import Block, Signature

rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
Y = (X.a + X.b > 0).astype(int)


def columns(frame: pd.DataFrame) -> list[np.ndarray]:
    return [frame[c].to_numpy() for c in frame.columns]


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(), make_pipeline(StandardScaler(), LogisticRegression())],
    ids=["logistic", "pipeline"],
)
def test_numeric_models_take_a_numpy_matrix_with_the_same_answers(estimator) -> None:
    estimator.fit(X, Y)
    served = ServedModel.from_estimator(estimator, name="m", examples=X.head(50))
    assert served.input_form == "numpy"
    rows = X.tail(20)
    np.testing.assert_allclose(
        served.predict(columns(rows)), estimator.predict_proba(rows), rtol=0, atol=1e-12
    )
    # rows parsed from a request as one matrix give the same bits as separate columns
    block = served.signature.convert_rows(rows.to_numpy().tolist(), list(rows.columns))
    assert isinstance(block, Block)
    assert np.array_equal(served.predict(block), served.predict(columns(rows)))
    # the caller's estimator still checks feature names (no warning: filterwarnings=error)
    estimator.predict_proba(rows)
    assert served.output.shape == (2,) and served.method == "predict_proba"


def test_a_model_that_selects_columns_by_name_gets_a_dataframe() -> None:
    frame = X.assign(region=np.where(X.c > 0, "north", "south"))
    model = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["region"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, Y)
    served = ServedModel.from_estimator(model, examples=frame.head(30))
    assert served.input_form == "dataframe"
    assert served.signature.columns[-1].type == "string"
    got = served.predict(columns(frame.head(5)))
    np.testing.assert_array_equal(got, model.predict_proba(frame.head(5)))


def test_a_regressor_uses_predict_and_a_signature_can_come_from_feature_names() -> None:
    model = LinearRegression().fit(X, X.a * 2)
    served = ServedModel.from_estimator(model, version=3)
    assert (served.method, served.version, served.output.shape) == ("predict", "3", ())
    assert served.signature.names == ["a", "b", "c", "d"]
    assert served.rows_within(10.0) > 1 and served.rows_within(0.0) == 0


def test_mistakes_are_usage_errors() -> None:
    model = LinearRegression().fit(X.to_numpy(), X.a)
    with pytest.raises(UsageError, match="no signature"):
        ServedModel.from_estimator(model)
    with pytest.raises(UsageError, match="has no predict_proba"):
        ServedModel.from_estimator(model, examples=X.head(3), method="predict_proba")
    wrong = Signature.from_mlflow([{"name": "a", "type": "double"}])
    with pytest.raises(UsageError, match="fails on the example rows"):
        ServedModel.from_estimator(model, signature=wrong)
