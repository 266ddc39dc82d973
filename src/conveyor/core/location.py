"""Where a user's definition lives, so that errors can point at it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def where(func: Callable[..., Any]) -> str:
    """``path/to/file.py:LINE`` of a function's definition, as precise as Python allows."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is None:
        return getattr(func, "__qualname__", repr(func))
    return f"{code.co_filename}:{code.co_firstlineno}"


def caller_site(depth: int = 2) -> str:
    """``file:line`` of the code ``depth`` frames above the caller of this function."""
    frame = inspect.currentframe()
    try:
        for _ in range(depth):
            if frame is None:
                break
            frame = frame.f_back
        if frame is None:
            return "<unknown>"
        return f"{frame.f_code.co_filename}:{frame.f_lineno}"
    finally:
        del frame
