"""Digests and cache keys. A step's cache key is sha256 over named parts, kept apart so that
``conveyor run --explain`` can say which part changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PART_NAMES = ("code", "params", "inputs", "files", "env", "salt")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheKeyParts:
    """Everything a step's result depends on.

    ``code`` maps each piece of the code closure (a function or a project module) to the
    digest of its source; ``env`` holds the Python version and the versions of the
    distributions the code imports.
    """

    code: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    salt: str | None = None

    def key(self) -> str:
        return sha256_text(canonical_json(self.to_json()))

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "params": self.params,
            "inputs": self.inputs,
            "files": self.files,
            "env": self.env,
            "salt": self.salt,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CacheKeyParts:
        return cls(**{k: data[k] for k in PART_NAMES if k in data})


def explain_change(old: CacheKeyParts | None, new: CacheKeyParts) -> list[str]:
    """Human-readable reasons why ``new`` differs from ``old`` (empty when they are equal)."""
    if old is None:
        return ["never ran before"]
    reasons: list[str] = []
    reasons += _dict_diff("code", old.code, new.code, show_values=False)
    reasons += _dict_diff("params", old.params, new.params, show_values=True)
    reasons += _dict_diff("inputs", old.inputs, new.inputs, short=True)
    reasons += _dict_diff("files", old.files, new.files, short=True)
    reasons += _dict_diff("env", _flat_env(old.env), _flat_env(new.env), show_values=True)
    if old.salt != new.salt:
        reasons.append(f"salt: {old.salt!r} -> {new.salt!r}")
    return reasons


def _flat_env(env: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in env.items():
        if isinstance(v, Mapping):
            flat.update({f"{k2}": v2 for k2, v2 in v.items()})
        else:
            flat[k] = v
    return flat


def _dict_diff(
    part: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    show_values: bool = True,
    short: bool = False,
) -> list[str]:
    def fmt(v: Any) -> str:
        if short and isinstance(v, str):
            return v[:12]
        return canonical_json(v) if not isinstance(v, str) else v

    out = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            out.append(f"{part}: '{k}' added" + (f" ({fmt(new[k])})" if show_values else ""))
        elif k not in new:
            out.append(f"{part}: '{k}' removed")
        elif canonical_json(old[k]) != canonical_json(new[k]):  # as the key sees them
            detail = f" ({fmt(old[k])} -> {fmt(new[k])})" if (show_values or short) else ""
            out.append(f"{part}: '{k}' changed{detail}")
    return out
