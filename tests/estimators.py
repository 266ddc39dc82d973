"""Estimators of the tests' own, as a project would define them: outside Conveyor's skops
allowlist, so loading a model that holds one needs ``trust.skops_types``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A project-defined transformer: skops cannot know whether it is safe."""

    def __init__(self, limit: float = 1.0) -> None:
        self.limit = limit

    def fit(self, X: Any, y: Any = None) -> Clip:
        return self

    def transform(self, X: Any) -> Any:
        return np.clip(X, -self.limit, self.limit)
