"""The training steps called as plain functions, as they are outside a pipeline run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from credit_risk.features import transform
from credit_risk.schema import TARGET
from pipelines.training import SLICES, evaluation_set, featurize, ingest, split, train


@pytest.fixture(scope="module")
def featurized() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    train_set, test_set = split(ingest(n_rows=3_000, seed=5), seed=5)
    return featurize(train_set, test_set)


def test_split_is_stratified_and_disjoint() -> None:
    data = ingest(n_rows=2_000, seed=3)
    train_set, test_set = split(data, test_size=0.25, seed=3)
    assert (len(train_set), len(test_set)) == (1_500, 500)
    assert abs(train_set[TARGET].mean() - test_set[TARGET].mean()) < 0.01
    both = pd.concat([train_set, test_set]).sort_values(list(data.columns)).reset_index(drop=True)
    expected = data.sort_values(list(data.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, expected)


def test_featurize_fits_on_train_and_keeps_the_label_last(featurized: tuple) -> None:
    train_features, test_features, spec = featurized
    json.dumps(spec, allow_nan=False)
    assert list(train_features.columns) == [*spec["columns"], TARGET]
    assert list(test_features.columns) == [*spec["columns"], TARGET]


def test_featurize_uses_train_statistics_for_test() -> None:
    train_set, test_set = split(ingest(n_rows=1_000, seed=6), seed=6)
    _, test_features, spec = featurize(train_set, test_set)
    expected = transform(test_set, spec)
    pd.testing.assert_frame_equal(test_features.drop(columns=[TARGET]), expected)


def test_evaluation_set_keeps_features_and_slice_columns(featurized: tuple) -> None:
    train_set, test_set = split(ingest(n_rows=3_000, seed=5), seed=5)
    _, test_features, _ = featurize(train_set, test_set)
    frame = evaluation_set(test_features, test_set)
    assert list(frame.columns) == [*test_features.columns, *SLICES]
    assert frame["region"].notna().all()


def test_model_learns_the_signal(featurized: tuple) -> None:
    from sklearn.metrics import roc_auc_score

    train_features, test_features, _ = featurized
    model = train(train_features, seed=5)
    x, y = test_features.drop(columns=[TARGET]), test_features[TARGET]
    assert roc_auc_score(y, model.predict_proba(x)[:, 1]) > 0.72
