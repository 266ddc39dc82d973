"""The prediction service's settings, as one value (and as JSON, for worker processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.serve.batching import BatchSettings
from conveyor.serve.limits import Limits
from conveyor.serve.prediction_log import LogSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeSettings:
    """How the service behaves: limits, optional micro-batching, the prediction log, and how
    many threads call the model."""

    limits: Limits = field(default_factory=Limits)
    batching: BatchSettings | None = None
    prediction_log: LogSettings | None = None
    threads: int = 1
    inline_s: float = 0.001  # a call expected within this runs on the event loop (0: never)

    def to_json(self) -> dict[str, Any]:
        return {
            "limits": self.limits.to_json(),
            "batching": None
            if self.batching is None
            else {
                "max_batch_rows": self.batching.max_batch_rows,
                "max_wait_s": self.batching.max_wait_s,
            },
            "prediction_log": None
            if self.prediction_log is None
            else self.prediction_log.to_json(),
            "threads": self.threads,
            "inline_s": self.inline_s,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ServeSettings:
        batching = doc.get("batching")
        logs = doc.get("prediction_log")
        return cls(
            limits=Limits(**doc.get("limits", {})),
            batching=BatchSettings(**batching) if batching else None,
            prediction_log=LogSettings(**logs) if logs else None,
            threads=int(doc.get("threads", 1)),
            inline_s=float(doc.get("inline_s", 0.001)),
        )
