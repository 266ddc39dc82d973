"""What the behavioural checks are asked: minimum-functionality cases and the config block.

:class:`Case` is one row and what the model must say about it; :class:`BehaviourSpec` is the
``checks.model.behaviour`` block of ``conveyor.yaml``, which :func:`parse_behaviour` reads and
:func:`conveyor.checks.behaviour.run_behaviour` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ConfigError, did_you_mean


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """A minimum-functionality case: one input row and what the model must say about it."""

    name: str
    inputs: Mapping[str, Any]
    label: Any = None  # expected ``predict`` output
    min_score: float | None = None  # expected score range (inclusive)
    max_score: float | None = None


# --- configuration ------------------------------------------------------------------------

_KEYS = {
    "invariance": (("column",), ("epsilon", "values", "seed", "predict", "name")),
    "direction": (("column", "delta", "expect"), ("tolerance", "predict", "name")),
    "cases": (("name", "inputs"), ("label", "min_score", "max_score")),
}


_NUMBER = ((int, float), "a number")
_TYPES: dict[str, tuple[Any, str]] = {
    "column": (str, "a column name"),
    "name": (str, "a string"),
    "predict": (str, "predict_proba or predict"),
    "values": (list, "a list"),
    "inputs": (Mapping, "a mapping of column to value"),
    "seed": (int, "a whole number"),
    **{key: _NUMBER for key in ("epsilon", "delta", "tolerance", "min_score", "max_score")},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviourSpec:
    """The ``checks.model.behaviour`` block: keyword arguments of each check to run."""

    invariance: tuple[dict[str, Any], ...] = ()
    direction: tuple[dict[str, Any], ...] = ()
    cases: tuple[Case, ...] = ()


def _entries(raw: Mapping[str, Any], kind: str, where: str) -> list[dict[str, Any]]:
    required, optional = _KEYS[kind]
    entries = raw.get(kind) or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ConfigError(f"{where}.{kind} must be a list of mappings")
    for i, entry in enumerate(entries):
        for key in entry:
            if key not in required + optional:
                hint = did_you_mean(str(key), required + optional)
                raise ConfigError(f"{where}.{kind}[{i}]: unknown key {key!r}", hint=hint)
        missing = [key for key in required if key not in entry]
        if missing:
            raise ConfigError(f"{where}.{kind}[{i}]: {', '.join(missing)} missing")
        for key, value in entry.items():
            expected = _TYPES.get(key)
            if expected and (isinstance(value, bool) or not isinstance(value, expected[0])):
                raise ConfigError(f"{where}.{kind}[{i}].{key} must be {expected[1]}, not {value!r}")
        if entry.get("expect", "non_decreasing") not in ("non_decreasing", "non_increasing"):
            raise ConfigError(
                f"{where}.{kind}[{i}].expect must be non_decreasing or non_increasing"
            )
    return [dict(e) for e in entries]


def parse_behaviour(raw: Any, where: str = "checks.model.behaviour") -> BehaviourSpec:
    """``{invariance: [{column: gender, epsilon: 0.01}], direction: [...], cases: [...]}``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            hint = did_you_mean(str(key), list(_KEYS)) or f"known keys: {', '.join(_KEYS)}"
            raise ConfigError(f"{where}: unknown key {key!r}", hint=hint)
    return BehaviourSpec(
        invariance=tuple(_entries(raw, "invariance", where)),
        direction=tuple(_entries(raw, "direction", where)),
        cases=tuple(Case(**c) for c in _entries(raw, "cases", where)),
    )
