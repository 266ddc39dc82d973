"""Drift options from the project file (``checks.data.drift``) or a step param."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.checks.drift import DriftOptions
from conveyor.errors import ConfigError, UsageError, did_you_mean

# File key -> DriftOptions field; ``numeric`` and ``categorical`` read as in DESIGN.md §11.
KEYS = {
    "columns": "columns",
    "exclude": "exclude",
    "numeric": "numeric_method",
    "numeric_method": "numeric_method",
    "categorical": "categorical_method",
    "categorical_method": "categorical_method",
    "threshold": "threshold",
    "methods": "methods",
    "thresholds": "thresholds",
    "drift_share": "drift_share",
}


def drift_options(raw: Mapping[str, Any] | None, where: str = "checks.data.drift") -> DriftOptions:
    """DriftOptions from a mapping; unknown keys and bad values are ConfigErrors (exit 2)."""
    fields: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if key not in KEYS:
            raise ConfigError(
                f"{where}.{key}: unknown key",
                hint=did_you_mean(str(key), list(KEYS)) or f"keys: {list(KEYS)}",
            )
        if key in ("columns", "exclude") and value is not None:
            value = tuple(str(v) for v in value)
        if key in ("methods", "thresholds") and not isinstance(value, Mapping):
            raise ConfigError(f"{where}.{key}: expected a mapping of column to value")
        fields[KEYS[key]] = value
    try:
        return DriftOptions(**fields)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except UsageError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
