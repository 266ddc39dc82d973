"""The prediction service: one model version behind Open Inference Protocol v2 and MLflow's
``/invocations``, with Prometheus metrics, an OpenAPI document, bounded requests and a
prediction log. See docs/serving.md."""

from conveyor.serve.app import PredictionService
from conveyor.serve.batching import BatchSettings
from conveyor.serve.limits import Limits
from conveyor.serve.model import ServedModel
from conveyor.serve.prediction_log import LogSettings
from conveyor.serve.settings import ServeSettings
from conveyor.serve.signature import ColumnSpec, Signature

__all__ = [
    "BatchSettings",
    "ColumnSpec",
    "Limits",
    "LogSettings",
    "PredictionService",
    "ServeSettings",
    "ServedModel",
    "Signature",
]
