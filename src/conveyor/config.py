"""``conveyor.yaml``: schema, safe loading, ``${ENV}`` interpolation and ``CONVEYOR_*`` overrides.

Loading is a function, not an import-time global: ``load_config(path, environ=...)``.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conveyor.config_ci import CIConfig
from conveyor.config_delivery import AccessConfig, EnvironmentConfig, check_environments
from conveyor.errors import ConfigError, did_you_mean

CONFIG_NAME = "conveyor.yaml"
MAX_BYTES = 1_000_000
MAX_DEPTH = 40
MAX_NODES = 100_000

ENV_OVERRIDES = {
    "CONVEYOR_METADATA_URL": ("stores", "metadata"),
    "CONVEYOR_ARTIFACTS_URL": ("stores", "artifacts"),
    "CONVEYOR_EXECUTOR": ("executor",),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Stores(_Model):
    metadata: str = "sqlite:///.conveyor/conveyor.db"
    artifacts: str = ".conveyor/artifacts"


class Trust(_Model):
    """What the project allows loading besides plain data."""

    pickle: bool = False
    skops_types: list[str] = Field(default_factory=list)


class CmdStepConfig(_Model):
    name: str
    cmd: list[str] | str
    deps: list[str] = Field(default_factory=list)
    outs: list[str] = Field(default_factory=list)
    params: dict[str, Any] | list[str] = Field(default_factory=list)
    cache: bool = True


class CmdPipelineConfig(_Model):
    steps: list[CmdStepConfig]


class DataChecks(_Model):
    """``checks.data``: the defaults of the built-in data steps."""

    schema_file: str | None = Field(default=None, alias="schema")
    drift: dict[str, Any] = Field(default_factory=dict)
    policy: Literal["blocking", "warning"] = "blocking"


class ModelChecks(_Model):
    """``checks.model``: the defaults of the built-in model steps."""

    label: str | None = None
    thresholds: dict[str, str] = Field(default_factory=dict)
    champion: dict[str, Any] = Field(default_factory=dict)
    slices: list[str] = Field(default_factory=list)
    behaviour: dict[str, Any] = Field(default_factory=dict)
    policy: Literal["blocking", "warning"] = "blocking"


class Checks(_Model):
    data: DataChecks = Field(default_factory=DataChecks)
    model: ModelChecks = Field(default_factory=ModelChecks)


class ModelSettings(_Model):
    """``model``: what the project's model is called and how it predicts."""

    name: str | None = None
    predict: Literal["predict", "predict_proba"] = "predict_proba"


class ProjectConfig(_Model):
    name: str
    pipelines: dict[str, str | CmdPipelineConfig] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    stores: Stores = Field(default_factory=Stores)
    executor: str = "local"
    workers: int = Field(default=1, ge=1, le=256)
    trust: Trust = Field(default_factory=Trust)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    default_pipeline: str | None = None
    model: ModelSettings = Field(default_factory=ModelSettings)
    checks: Checks = Field(default_factory=Checks)
    environments: list[EnvironmentConfig] = Field(default_factory=list)
    access: AccessConfig = Field(default_factory=AccessConfig)
    ci: CIConfig = Field(default_factory=CIConfig)

    _environments = field_validator("environments")(check_environments)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (at most 100 characters)")
        return v

    @field_validator("pipelines")
    @classmethod
    def _pipelines(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, ref in v.items():
            if isinstance(ref, str) and not re.fullmatch(r"[\w./-]+\.py:[A-Za-z_]\w*", ref):
                raise ValueError(f"'{key}: {ref}' must have the form 'path/to/module.py:function'")
        return v

    @field_validator("executor")
    @classmethod
    def _executor(cls, v: str) -> str:
        if v != "local":
            raise ValueError(
                "this version runs steps locally only; use 'local' (with 'workers: N' for a "
                "process pool)"
            )
        return v


# libyaml's safe loader when PyYAML has it (ten times faster on a long pipeline list).
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LimitedLoader(_SafeLoader):  # type: ignore[misc]
    """The safe loader, refusing documents too deep or too large once aliases are expanded."""


def _expanded_size(node: yaml.Node, path: str, max_nodes: int = MAX_NODES) -> int:
    """Count nodes as if every alias were copied, without copying; stop past MAX_NODES."""
    memo: dict[int, int] = {}

    def visit(n: yaml.Node, depth: int, stack: frozenset[int]) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{path}: nesting deeper than {MAX_DEPTH} levels",
                hint="flatten the file; conveyor.yaml never needs this depth",
            )
        if id(n) in stack:
            raise ConfigError(f"{path}: recursive alias at line {n.start_mark.line + 1}")
        if id(n) in memo:
            return memo[id(n)]
        total = 1
        if isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        elif isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        else:
            children = []
        for child in children:
            total += visit(child, depth + 1, stack | {id(n)})
            if total > max_nodes:
                raise ConfigError(
                    f"{path}: the document expands to more than {max_nodes} values "
                    "once aliases are expanded",
                    hint="remove repeated aliases, or split the file",
                )
        memo[id(n)] = total
        return total

    return visit(node, 0, frozenset())


def safe_load_limited(text: str, path: str, max_nodes: int = MAX_NODES) -> Any:
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, path, max_nodes)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = exc.problem or str(exc)
        hint = "fix the YAML syntax"
        if "nesting depth" in problem:
            problem = f"nesting deeper than {MAX_DEPTH} levels"
            hint = "flatten the file; conveyor.yaml never needs this depth"
        if "constructor" in problem or "tag" in problem:
            hint = "conveyor.yaml accepts plain YAML values only; remove the '!!' tag"
        raise ConfigError(f"{where}: {problem}", hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: nesting deeper than {MAX_DEPTH} levels",
            hint="flatten the file; conveyor.yaml never needs this depth",
        ) from None
    finally:
        loader.dispose()


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, environ: Mapping[str, str], path: str, keypath: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in string values (never in keys)."""
    if isinstance(value, dict):
        return {
            k: interpolate(v, environ, path, f"{keypath}.{k}" if keypath else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, path, f"{keypath}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: {keypath}: environment variable {name} is not set",
            hint=f"export {name}=... or write ${{{name}:-default}}",
        )

    return _ENV_RE.sub(repl, value)


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var, keys in ENV_OVERRIDES.items():
        if environ.get(var):
            target: Any = data
            for k in keys[:-1]:
                target = target.setdefault(k, {}) if isinstance(target, dict) else None
            if isinstance(target, dict):  # else validation reports the malformed section
                target[keys[-1]] = environ[var]


_MODELS: dict[str, type[BaseModel]] = {}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds, directly or inside list/dict/union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _format_error(errors: list[Any], path: str, data: Any) -> ConfigError:
    """One clear message from pydantic's errors: the most specific one, with the key path as
    written in the file (union branch tags removed) and, for unknown keys, a suggestion."""
    if not _MODELS:
        _MODELS.update(
            {
                m.__name__: m
                for m in (
                    ProjectConfig,
                    Stores,
                    Trust,
                    CmdStepConfig,
                    CmdPipelineConfig,
                    Checks,
                    DataChecks,
                    ModelChecks,
                    ModelSettings,
                )
            }
        )
    err = max(errors, key=lambda e: (e.get("type") == "extra_forbidden", len(e.get("loc", ()))))
    shown: list[str] = []
    node: Any = data
    model: type[BaseModel] | None = ProjectConfig
    loc = list(err.get("loc", ()))
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (
            isinstance(part, str)
            and part in _MODELS
            and not (isinstance(node, dict) and part in node)
        ):
            model = _MODELS[part]  # a union branch tag, not a key of the file
            continue
        if isinstance(part, int) and isinstance(node, list):
            shown[-1:] = [f"{shown[-1]}[{part}]"] if shown else [f"[{part}]"]
            node = node[part] if part < len(node) else None
            continue
        if isinstance(node, dict) and part in node:
            shown.append(str(part))
            if not last:
                field = model.model_fields.get(str(part)) if model else None
                model = _model_in(field.annotation) if field is not None else None
                node = node[part]
        elif last and err.get("type") == "extra_forbidden":
            shown.append(str(part))
    keypath = ".".join(shown) or "(top level)"
    if err.get("type") == "extra_forbidden":
        known = [f.alias or n for n, f in model.model_fields.items()] if model else []
        suggestion = did_you_mean(str(loc[-1]), known) if known else None
        return ConfigError(
            f"{path}: {keypath}: unknown key",
            hint=suggestion or (f"allowed keys here: {', '.join(known)}" if known else None),
        )
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return ConfigError(
        f"{path}: {keypath}: {message}",
        hint="see docs/configuration.md for the expected form",
    )


def parse_config(
    text: str, path: str = CONFIG_NAME, environ: Mapping[str, str] | None = None
) -> ProjectConfig:
    env = os.environ if environ is None else environ
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(
            f"{path}: file is larger than {MAX_BYTES // 1000} kB",
            hint="conveyor.yaml holds settings only; keep data in files it points to",
        )
    data = safe_load_limited(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, not {type(data).__name__}",
            hint="start with 'name: my-project'",
        )
    data = interpolate(data, env, path)
    _apply_env_overrides(data, env)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _format_error(exc.errors(), path, data) from None


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file", hint="run 'conveyor init' to create one"
        ) from None
    if size > MAX_BYTES:
        raise ConfigError(
            f"{path}: file is larger than {MAX_BYTES // 1000} kB",
            hint="conveyor.yaml holds settings only; keep data in files it points to",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text, str(path), environ)


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``conveyor.yaml``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or any parent directory",
        hint="run 'conveyor init' to create a project, or pass --project DIR",
    )


def config_value(config: ProjectConfig, dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key path such as ``checks.data.schema`` (file spelling)."""
    node: Any = config.model_dump(by_alias=True)
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return node is not None and node != {} and node != [], node
