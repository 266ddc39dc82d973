"""Bounds on every request: body size, rows, time to send the body, time to predict, and how
many prediction requests may be in flight at once."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from conveyor.errors import UsageError
from conveyor.serve.deadlines import Deadlines
from conveyor.serve.problems import Refused

MB = 1024 * 1024


class Disconnected(Exception):
    """The client closed the connection before its request was read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_body_bytes: int = 10 * MB
    max_rows: int = 10_000
    predict_timeout_s: float = 5.0
    max_in_flight: int = 64
    body_timeout_s: float = 10.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise UsageError(f"serving limit {name} must be positive, not {value}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise Refused(
                    400, "the Content-Length header is not a number", close=True
                ) from None
    return None


async def read_body(
    receive: Any, declared: int | None, limits: Limits, deadlines: Deadlines
) -> bytes:
    """The whole request body, refused with 413 as soon as it is known to be too large (from
    Content-Length, before reading any of it) and with 408 when it has not all arrived
    within ``deadlines.seconds`` (the service's ``Deadlines`` of ``limits.body_timeout_s``)."""
    limit = limits.max_body_bytes
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task, task.cancel)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, None)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if deadlines.stop(task):
            raise  # cancelled by someone else
        task.uncancel()
        raise Refused(
            408,
            f"the request body did not arrive within {deadlines.seconds:g} s",
            hint="send the whole body at once",
            close=True,
        ) from None
    finally:
        deadlines.stop(task)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int, declared: int | None) -> Refused:
    said = f" ({declared} bytes)" if declared is not None else ""
    return Refused(
        413,
        f"the request body{said} is larger than the limit of {limit} bytes",
        hint="split the batch into several requests",
        close=True,
    )
