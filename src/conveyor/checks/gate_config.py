"""The model gate's configuration: the ``checks.model`` block of ``conveyor.yaml``.

:meth:`GateConfig.from_mapping` reads metric thresholds (``parse_threshold``), the champion
rule (``parse_champion``), slice columns and behavioural checks, and raises
:class:`~conveyor.errors.ConfigError` naming the key when one is invalid.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.checks.behaviour_spec import BehaviourSpec, parse_behaviour
from conveyor.checks.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from conveyor.errors import ConfigError, did_you_mean

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
_EXPRESSION = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_EXAMPLE = 'an operator and a number in quotes, e.g. ">= 0.85" (operators: >=, >, <=, <, ==)'


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """``metric op value``, e.g. ``roc_auc >= 0.85``."""

    metric: str
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        return OPERATORS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChampionRule:
    """Compare the challenger with the champion on ``metric`` by a paired bootstrap.

    Exactly one of ``max_drop`` (not worse by more than it) and ``min_gain`` (better by at
    least it). ``slice_max_drop`` turns on the per-slice comparison, for slices with at least
    ``min_slice_rows`` rows.
    """

    metric: str
    max_drop: float | None = None
    min_gain: float | None = None
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    slice_max_drop: float | None = None
    min_slice_rows: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    thresholds: tuple[Threshold, ...] = ()
    champion: ChampionRule | None = None
    slices: tuple[str, ...] = ()
    behaviour: BehaviourSpec | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "checks.model") -> GateConfig:
        """Parse the ``checks.model`` block; ConfigError (exit 2) naming the key if invalid.

        ``label`` and ``policy`` belong to the built-in step that runs the gate, and are
        accepted and left alone; an empty ``champion`` or ``behaviour`` means none.
        """
        _known_keys(
            raw, ("thresholds", "champion", "slices", "behaviour", "label", "policy"), where
        )
        thresholds = raw.get("thresholds") or {}
        if not isinstance(thresholds, Mapping):
            raise ConfigError(
                f"{where}.thresholds must be a mapping of metric to expression",
                hint='e.g. thresholds: {roc_auc: ">= 0.85"}',
            )
        slices = raw.get("slices") or []
        if isinstance(slices, str) or not all(isinstance(s, str) for s in slices):
            raise ConfigError(f"{where}.slices must be a list of column names")
        champion, behaviour = raw.get("champion"), raw.get("behaviour")
        return cls(
            thresholds=tuple(
                parse_threshold(str(m), e, where=f"{where}.thresholds")
                for m, e in thresholds.items()
            ),
            champion=parse_champion(champion, f"{where}.champion") if champion else None,
            slices=tuple(slices),
            behaviour=parse_behaviour(behaviour, f"{where}.behaviour") if behaviour else None,
        )


# --- parsing ------------------------------------------------------------------------------


def _known_keys(raw: Any, known: Sequence[str], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in known:
            hint = did_you_mean(str(key), list(known)) or f"known keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {key!r}", hint=hint)


def _metric(name: Any, where: str) -> str:
    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    if name not in known:
        hint = did_you_mean(str(name), known) or f"known metrics: {', '.join(known)}"
        raise ConfigError(f"{where}: unknown metric {name!r}", hint=hint)
    return str(name)


def parse_threshold(metric: str, expression: Any, *, where: str = "thresholds") -> Threshold:
    """``parse_threshold("roc_auc", ">= 0.85")``; ConfigError with a suggestion if invalid."""
    name = _metric(metric, f"{where}.{metric}")
    found = _EXPRESSION.match(expression) if isinstance(expression, str) else None
    if found is None:
        raise ConfigError(f"{where}.{metric}: cannot read {expression!r}", hint=f"write {_EXAMPLE}")
    return Threshold(metric=name, op=found[1], value=float(found[2]))


def _number(raw: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise ConfigError(f"{where}.{key} must be a number, not {value!r}")
    if value is not None and value < 0:
        raise ConfigError(f"{where}.{key} must be >= 0, not {value}")
    return None if value is None else float(value)


def parse_champion(raw: Any, where: str = "champion") -> ChampionRule:
    """``{metric: roc_auc, max_drop: 0.005, confidence: 0.95}`` -> :class:`ChampionRule`."""
    keys = [f.name for f in ChampionRule.__dataclass_fields__.values()]
    _known_keys(raw, keys, where)
    if "metric" not in raw:
        raise ConfigError(f"{where}: 'metric' is missing", hint="e.g. metric: roc_auc")
    max_drop = _number(raw, "max_drop", where, None)
    min_gain = _number(raw, "min_gain", where, None)
    if (max_drop is None) == (min_gain is None):
        raise ConfigError(
            f"{where}: give exactly one of max_drop and min_gain",
            hint="max_drop: 0.005 (not worse by more) or min_gain: 0.01 (better by at least)",
        )
    confidence = _number(raw, "confidence", where, 0.95) or 0.0
    resamples = _number(raw, "resamples", where, 1000) or 0.0
    if not 0.5 <= confidence < 1.0 or resamples < 100 or resamples != int(resamples):
        raise ConfigError(
            f"{where}: confidence must be in [0.5, 1) and resamples a whole number >= 100",
            hint="e.g. confidence: 0.95, resamples: 1000",
        )
    return ChampionRule(
        metric=_metric(raw["metric"], f"{where}.metric"),
        max_drop=max_drop,
        min_gain=min_gain,
        confidence=confidence,
        resamples=int(resamples),
        seed=int(_number(raw, "seed", where, 0) or 0),
        slice_max_drop=_number(raw, "slice_max_drop", where, None),
        min_slice_rows=int(_number(raw, "min_slice_rows", where, 100) or 0),
    )
