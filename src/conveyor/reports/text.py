"""How numbers, durations, times and values read in a report (HTML and Markdown alike)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any


def num(value: float | int | None) -> str:
    """4 significant digits; whole thousands with separators; None and NaN as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 1e4 and abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def when(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def short(digest: str) -> str:
    return digest[:12]


def value(raw: Any) -> str:
    """A param or example value: text as it is, anything else as JSON."""
    if isinstance(raw, str):
        return raw or '""'
    if isinstance(raw, float):
        return num(raw)
    try:
        return json.dumps(raw, sort_keys=True, default=str)
    except ValueError:  # a circular structure cannot come from JSON, but be safe
        return repr(raw)


def commit(git_commit: str | None, dirty: bool) -> str:
    if not git_commit:
        return "(not a git repository)"
    return git_commit[:12] + (" + uncommitted changes" if dirty else "")
