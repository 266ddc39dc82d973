"""JSON in and out of the service: orjson when it is installed, the standard library if not.

Both refuse ``NaN`` and ``Infinity`` (they are not JSON), and both write numpy arrays.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np

from conveyor.serve.problems import bad_request

orjson: Any
try:
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None

_NON_JSON = (b"NaN", b"Infinity")


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(body: bytes, what: str = "the request body") -> Any:
    """Parsed JSON, or a 400 saying where the syntax breaks."""
    try:
        if orjson is not None:
            return orjson.loads(body)
        return json.loads(body, parse_constant=_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        hint = "send UTF-8 JSON"
        if any(token in body for token in _NON_JSON):
            hint = "NaN and Infinity are not JSON: send null for a missing value"
        raise bad_request(f"{what} is not valid JSON: {_short(exc)}", hint=hint) from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; NaN becomes null (as orjson writes it)."""
    if orjson is not None:
        data: bytes = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)
        return data
    text = json.dumps(_nan_to_none(value), default=_default, separators=(",", ":"))
    return text.encode()


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.ndarray):
        return _nan_to_none(value.tolist())
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
