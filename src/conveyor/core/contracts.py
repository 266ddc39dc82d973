"""Artifact contracts: what a step's outputs must satisfy, declared with ``@step(contracts=...)``.

The engine checks every output right after the step runs and before anything is stored; a
violation fails the step with a message naming the contract and what is wrong. This is the
"each component produces the artifacts it declares" test of CI.

Forms (one mapping per output name)::

    {"schema": "schemas/applications.yaml"}      a table validated against a schema file
    {"columns": ["age", "income"], "min_rows": 1} a table with these columns (and rows)
    {"shape": [None, 12], "dtype": "float64"}     an array; None matches any length
    {"keys": ["roc_auc", "accuracy"]}             a mapping (e.g. metrics) with these keys
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import DefinitionError, did_you_mean

TABLE_KEYS = {"schema", "columns", "min_rows"}
ARRAY_KEYS = {"shape", "dtype"}
MAPPING_KEYS = {"keys"}
ALL_KEYS = TABLE_KEYS | ARRAY_KEYS | MAPPING_KEYS


@dataclass(frozen=True, slots=True, kw_only=True)
class Contract:
    output: str
    kind: str  # "table" | "array" | "mapping"
    schema: str | None = None
    columns: tuple[str, ...] | None = None
    min_rows: int | None = None
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None
    keys: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.schema:
            parts.append(f"schema {self.schema}")
        if self.columns:
            parts.append(f"columns {list(self.columns)}")
        if self.min_rows is not None:
            parts.append(f"at least {self.min_rows} rows")
        if self.shape is not None:
            parts.append(f"shape {list(self.shape)}")
        if self.dtype:
            parts.append(f"dtype {self.dtype}")
        if self.keys:
            parts.append(f"keys {list(self.keys)}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("output", "kind", *sorted(ALL_KEYS))}


def parse_contracts(
    spec: Mapping[str, Mapping[str, Any]] | None, outputs: Sequence[str], where: str
) -> dict[str, Contract]:
    """Contracts by output name, or a DefinitionError naming the step and the problem."""
    contracts: dict[str, Contract] = {}
    for output, rules in (spec or {}).items():
        if output not in outputs:
            raise DefinitionError(
                f"{where}: contract for unknown output '{output}'",
                hint=did_you_mean(output, list(outputs)) or f"outputs: {list(outputs)}",
            )
        if not isinstance(rules, Mapping) or not rules:
            raise DefinitionError(
                f"{where}: the contract of '{output}' must be a mapping",
                hint="e.g. {'columns': ['a', 'b']} or {'keys': ['roc_auc']}",
            )
        contracts[output] = _one(output, rules, where)
    return contracts


def _one(output: str, rules: Mapping[str, Any], where: str) -> Contract:
    for key in rules:
        if key not in ALL_KEYS:
            raise DefinitionError(
                f"{where}: unknown contract rule '{key}' for output '{output}'",
                hint=did_you_mean(key, sorted(ALL_KEYS)) or f"rules: {sorted(ALL_KEYS)}",
            )
    kinds = {
        kind
        for kind, keys in (("table", TABLE_KEYS), ("array", ARRAY_KEYS), ("mapping", MAPPING_KEYS))
        if keys & set(rules)
    }
    if len(kinds) > 1:
        raise DefinitionError(
            f"{where}: the contract of '{output}' mixes rules of a {' and a '.join(sorted(kinds))}",
            hint="keep one kind per output",
        )
    schema = rules.get("schema")
    if schema is not None:
        norm = posixpath.normpath(str(schema))
        if str(schema).startswith("/") or norm.startswith(".."):
            raise DefinitionError(
                f"{where}: contract schema '{schema}' leaves the project",
                hint="give the schema file relative to the project directory",
            )
    shape = rules.get("shape")
    try:
        return Contract(
            output=output,
            kind=kinds.pop(),
            schema=str(schema) if schema is not None else None,
            columns=tuple(str(c) for c in rules["columns"]) if "columns" in rules else None,
            min_rows=int(rules["min_rows"]) if "min_rows" in rules else None,
            shape=tuple(None if d is None else int(d) for d in shape)
            if shape is not None
            else None,
            dtype=str(rules["dtype"]) if "dtype" in rules else None,
            keys=tuple(str(k) for k in rules["keys"]) if "keys" in rules else None,
        )
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"{where}: invalid contract for '{output}': {exc}") from None
