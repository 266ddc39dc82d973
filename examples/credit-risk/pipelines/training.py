"""Training pipeline: ingest → validate_data → split → featurize → train → evaluate_model →
validate_model (the model gate).

Every step is seeded, so a run with the same params reproduces every artifact bit for bit.
Params: ``n_rows``, ``seed`` and ``drift`` belong to the pipeline; ``test_size`` and the
model's hyperparameters (``learning_rate``, ``max_iter``, ``max_leaf_nodes``,
``min_samples_leaf``, ``l2_regularization``) are step params, overridden with e.g.
``conveyor run -p train.learning_rate=0.1``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from conveyor import log_metrics, pipeline, step
from conveyor.steps import evaluate_model, validate_data, validate_model
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from credit_risk.features import FeatureSpec, fit_spec, split_xy, transform
from credit_risk.generate import generate_applications
from credit_risk.schema import TARGET

SLICES = ("region", "employment_type")


@step
def ingest(n_rows: int = 5000, seed: int = 7, drift: float = 0.0) -> pd.DataFrame:
    """A batch of synthetic loan applications (stands in for reading the application table)."""
    return generate_applications(n_rows, seed, drift)


@step(outputs=("train", "test"))
def split(
    data: pd.DataFrame, test_size: float = 0.25, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified train/test split, so both sides keep the batch's default rate."""
    train, test = train_test_split(
        data, test_size=test_size, stratify=data[TARGET], random_state=seed
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


@step(outputs=("train_features", "test_features", "spec"))
def featurize(
    train: pd.DataFrame, test: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec]:
    """Fit the feature spec on train only; transform both sides. The label is kept last."""
    spec = fit_spec(train)

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        matrix = transform(frame, spec)
        matrix[TARGET] = frame[TARGET].to_numpy(dtype=np.int64)
        return matrix

    return encode(train), encode(test), spec


@step
def train(
    train_features: pd.DataFrame,
    learning_rate: float = 0.05,
    max_iter: int = 150,
    max_leaf_nodes: int = 8,
    min_samples_leaf: int = 40,
    l2_regularization: float = 1.0,
    seed: int = 7,
) -> HistGradientBoostingClassifier:
    """Gradient-boosted trees with a fixed seed and no early stopping (so no hidden split)."""
    x, y = split_xy(train_features)
    model = HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=False,
        random_state=seed,
    )
    model.fit(x, y)
    log_metrics({"train_roc_auc": roc_auc_score(y, model.predict_proba(x)[:, 1])})
    return model


@step(contracts={"output": {"min_rows": 100}})
def evaluation_set(test_features: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The test features with the raw columns the model is judged on per slice.

    The model only ever sees its own feature columns; ``region`` and ``employment_type`` ride
    along so that evaluate_model and validate_model can report and compare every slice.
    """
    frame = test_features.copy()
    for column in SLICES:
        frame[column] = test[column].fillna("missing").to_numpy()
    return frame


@pipeline
def training(n_rows: int = 5000, seed: int = 7, drift: float = 0.0):
    raw = ingest(n_rows=n_rows, seed=seed, drift=drift)
    validate_data(raw)
    train_set, test_set = split(raw, seed=seed)
    train_features, test_features, _spec = featurize(train_set, test_set)
    model = train(train_features, seed=seed)
    held_out = evaluation_set(test_features, test_set)
    evaluate_model(model, held_out)
    validate_model(model, held_out)
