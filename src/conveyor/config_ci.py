"""``ci:`` in ``conveyor.yaml``: what ``conveyor ci`` runs on a pull request.

The CI sample reaches the pipeline as param overrides, the same ones ``conveyor run -p``
takes: ``rows: N`` sets the pipeline's row-count param (``row_param``, ``n_rows`` by default)
to N; ``fraction: F`` sets it to F times its configured value; ``params`` adds any other
overrides (e.g. fewer boosting rounds). The baseline is computed with the same overrides, so
the two runs are comparable and share the cache.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conveyor.config_delivery import Duration, seconds

_REF_RE = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CISample(_Model):
    """How the CI run is made smaller than a full run: at most one of ``rows`` and
    ``fraction``, plus any ``params``."""

    rows: int | None = Field(default=None, ge=1)
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    row_param: str = "n_rows"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_size(self) -> CISample:
        if self.rows is not None and self.fraction is not None:
            raise ValueError("give rows or fraction, not both")
        return self


class CIServe(_Model):
    """Stage 5: a smoke test of the candidate's package in a fresh process, then a short
    closed-loop load test of its prediction service, judged by ``slo``."""

    enabled: bool = True
    concurrency: int = Field(default=4, ge=1, le=1024)
    duration: Duration = "2s"
    warmup: Duration = "0.5s"
    slo: dict[str, Any] = Field(default_factory=lambda: {"max_error_rate": 0.0})

    @field_validator("duration", "warmup")
    @classmethod
    def _duration(cls, value: Duration) -> Duration:
        if seconds(value) < 0:
            raise ValueError("must not be negative")
        return value


class CIConfig(_Model):
    """``ci:``: the sample, the baseline branch, the tests and the serving checks."""

    base: str | None = None  # default: the repository's default branch
    pipeline: str | None = None  # default: the project's default pipeline
    tests: list[str] | None = None  # default: ["tests"] when the project has that directory
    pytest_args: list[str] = Field(default_factory=list)
    sample: CISample = Field(default_factory=CISample)
    data: str | None = None  # STEP[.OUTPUT] compared for drift; default: validate_data's input
    model: str | None = None  # STEP[.OUTPUT] holding the model; default: the evaluated one
    champion: dict[str, Any] = Field(default_factory=dict)  # default: checks.model.champion
    serve: CIServe = Field(default_factory=CIServe)
    timeout: Duration = "30m"  # of the pytest stage

    @field_validator("data", "model")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF_RE.fullmatch(value):
            raise ValueError(f"'{value}' must name a step output as STEP or STEP.OUTPUT")
        return value

    @field_validator("tests")
    @classmethod
    def _tests(cls, value: list[str] | None) -> list[str] | None:
        for path in value or []:
            if path.startswith(("/", "~")) or ".." in path.replace("\\", "/").split("/"):
                raise ValueError(f"'{path}' must be a path inside the project")
        return value
