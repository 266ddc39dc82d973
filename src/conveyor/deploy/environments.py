"""Looking up environments in the project's configuration."""

from __future__ import annotations

from conveyor.config import ProjectConfig
from conveyor.config_delivery import EnvironmentConfig
from conveyor.errors import UsageError, did_you_mean


def environment(config: ProjectConfig, name: str) -> EnvironmentConfig:
    for env in config.environments:
        if env.name == name:
            return env
    names = [env.name for env in config.environments]
    if not names:
        raise UsageError(
            f"unknown environment '{name}': conveyor.yaml defines no environments",
            hint="add an environments: list (see docs/delivery.md)",
        )
    suggestion = did_you_mean(name, names)
    raise UsageError(
        f"unknown environment '{name}'",
        hint=(suggestion + " " if suggestion else "") + f"environments: {', '.join(names)}",
    )


def previous(config: ProjectConfig, name: str) -> EnvironmentConfig | None:
    """The environment listed before ``name``, which a version must have been live in."""
    names = [env.name for env in config.environments]
    index = names.index(name)
    return config.environments[index - 1] if index > 0 else None
