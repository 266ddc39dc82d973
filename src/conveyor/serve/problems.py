"""Refusals: a request the service will not answer, with the HTTP status and the field at fault.

A refusal is the client's problem (4xx) or the service's load (503, 504), never a fault: the
message names the field and what was expected, and never echoes the whole payload or schema.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import ConveyorError

SHOWN_CHARS = 40


class Refused(ConveyorError):
    """The request is refused with ``status``; ``field`` names the part of it at fault."""

    exit_code = 2

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        close: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.field = field
        self.headers = headers
        self.close = close  # the body was not read to its end: the connection must close

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.hint:
            body["hint"] = self.hint
        return body


def bad_request(message: str, *, field: str | None = None, hint: str | None = None) -> Refused:
    """A payload that is not what the protocol says (structure, syntax, unknown keys)."""
    return Refused(400, message, field=field, hint=hint)


def unprocessable(message: str, *, field: str | None = None, hint: str | None = None) -> Refused:
    """A well-formed payload whose values do not fit the model's signature."""
    return Refused(422, message, field=field, hint=hint)


def shown(value: Any) -> str:
    """A short, safe rendering of an offending value for a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
