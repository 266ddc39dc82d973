"""One root error for everything Conveyor reports to a user.

Every error carries a headline (what went wrong, and where), a ``hint`` (how to fix it) and
the process ``exit_code`` the CLI uses: 1 a gate or run failed, 2 a usage or configuration
error, 3 an internal error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_CANCELLED = 130


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(ConveyorError):
    """The user asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """``conveyor.yaml`` (or an override of it) is invalid."""


class DefinitionError(UsageError):
    """A step or pipeline is defined in a way Conveyor cannot run."""


class NotFoundError(UsageError):
    """A run, artifact or other reference does not exist."""


class ConflictError(ConveyorError):
    """Another writer got there first (a version number, a package, a promotion)."""

    exit_code = EXIT_FAILED


class RefusedError(ConveyorError):
    """The action is not allowed now: by the actor's roles, or by the state it would change
    (approving twice, promoting past an environment). Nothing was changed."""

    exit_code = EXIT_FAILED


class SchemaMismatchError(UsageError):
    """The metadata database was written by another version of Conveyor."""


class StepFailedError(ConveyorError):
    """A step of a run raised; the run is recorded as failed."""

    exit_code = EXIT_FAILED


class RunFailedError(ConveyorError):
    """A run ended without success."""

    exit_code = EXIT_FAILED


class GateFailedError(ConveyorError):
    """A blocking check failed: the step (and the run) fails with every reason."""

    exit_code = EXIT_FAILED


class LeaseLostError(RunFailedError):
    """Another process declared our run dead (no heartbeat); we must not write its results."""


class IntegrityError(ConveyorError):
    """Stored bytes do not match their digest."""

    exit_code = EXIT_INTERNAL


class TrustError(UsageError):
    """Loading a value would execute code the project has not trusted."""


class PublishError(ConveyorError):
    """A report could not be published to a code host (a pull-request comment, a note)."""

    exit_code = EXIT_FAILED


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """A "did you mean 'x'?" suggestion for a misspelt ``name``, or None."""
    import difflib

    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
