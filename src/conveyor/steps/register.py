"""The built-in register step: the trained model becomes the next version of its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.core.context import current_step, input_digest, project_root
from conveyor.core.step import step
from conveyor.errors import ConfigError
from conveyor.steps.builtin import builtin


def _check(params: dict[str, Any]) -> None:
    if not params.get("name"):
        raise ConfigError(
            "register: no model name is configured",
            hint="set model.name in conveyor.yaml or pass register(model, name=...)",
        )


@step(name="register")
def _register(
    model: Any, verdict: dict[str, Any] | None = None, name: str = "", description: str = ""
) -> dict[str, Any]:
    """Register ``model`` (as produced in this run) as the next version of ``name``.

    Pass the output of ``validate_model`` as ``verdict`` to register only a blessed model: a
    blocking gate already stops the run, and a warning-policy gate that did not bless the model
    makes this step refuse too.
    """
    from conveyor.engine.project import open_project
    from conveyor.errors import GateFailedError
    from conveyor.registry.versions import register_from_step

    if verdict is not None and not verdict.get("blessed", False):
        reasons = "; ".join(verdict.get("reasons", []))
        raise GateFailedError(f"the model was not blessed, so it is not registered: {reasons}")
    ctx = current_step()
    assert ctx is not None
    with open_project(Path(project_root())) as project:
        mv = register_from_step(
            project.metadata,
            name=name,
            run_id=ctx.run_id,
            digest=input_digest("model"),
            description=description,
            actor="conveyor run",
        )
    result: dict[str, Any] = {"schema": "conveyor.model_version/1", **mv.to_json()}
    return result


register = builtin(_register, defaults_from={"name": "model.name"}, check_params=_check)
