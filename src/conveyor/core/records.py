"""Statuses and read-side records of runs, step runs and artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


DONE_STEP = (StepStatus.SUCCEEDED, StepStatus.CACHED)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactInfo:
    """An artifact as stored: its digest, how it is materialized, and what it was."""

    digest: str
    materializer: str
    type_name: str
    size: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    id: str
    pipeline: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    git_commit: str | None
    git_dirty: bool
    git_diff_digest: str | None
    project_subdir: str
    params: dict[str, Any]
    environment: dict[str, Any]
    error: str | None
    reproduces: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRunRecord:
    id: int
    run_id: str
    name: str
    position: int
    status: StepStatus
    cache_key: str | None
    key_parts: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    error: str | None
    logs_digest: str | None
    cached_from: int | None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
