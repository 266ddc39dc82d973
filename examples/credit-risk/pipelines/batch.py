"""Checking a new batch of applications before it is scored or used for retraining.

The reference is the training batch (the same ``ingest`` step with the training params, so it
is reused from the cache); the new batch comes from the generator with its own seed and, to
simulate a changed population, a ``drift`` between 0 and 1. The batch must match the schema
(``validate_data``) and must not have drifted (``check_drift``); either gate blocks the run.
"""

from __future__ import annotations

from conveyor import pipeline
from conveyor.steps import check_drift, validate_data

from pipelines.training import ingest


@pipeline
def check_batch(n_rows: int = 5000, seed: int = 7, batch_seed: int = 11, drift: float = 0.0):
    reference = ingest(n_rows=n_rows, seed=seed, drift=0.0)
    batch = ingest(n_rows=n_rows, seed=batch_seed, drift=drift)
    validate_data(batch)
    check_drift(reference, batch)
