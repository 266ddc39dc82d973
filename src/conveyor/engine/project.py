"""A project: its root directory, its configuration, its stores and its pipelines."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.config import (
    CONFIG_NAME,
    CmdPipelineConfig,
    ProjectConfig,
    find_project_root,
    load_config,
)
from conveyor.core.pipeline import Invocation, Pipeline, PipelineGraph, build_graph, make_cmd_def
from conveyor.core.step import ParamSpec
from conveyor.errors import ConfigError, DefinitionError, did_you_mean
from conveyor.store import db
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.blobs import BlobStore
from conveyor.store.materializers import MaterializeContext
from conveyor.store.metadata import MetadataStore


class CmdPipeline:
    """A pipeline of cmd steps declared in ``conveyor.yaml`` (like a ``dvc.yaml``)."""

    def __init__(self, name: str, spec: CmdPipelineConfig, config_path: str) -> None:
        self.name = name
        self.location = f"{config_path} (pipelines.{name})"
        self.params: tuple[ParamSpec, ...] = ()
        self.spec = spec

    def trace(self, params: Mapping[str, Any]) -> PipelineGraph:
        invocations: list[Invocation] = []
        for i, s in enumerate(self.spec.steps):
            sd = make_cmd_def(
                s.name,
                s.cmd,
                deps=s.deps,
                outs=s.outs,
                params=s.params,
                cache=s.cache,
                location=f"{self.location}.steps[{i}]",
            )
            if any(inv.name == s.name for inv in invocations):
                raise DefinitionError(
                    f"duplicate step name '{s.name}' in {self.location}",
                    hint="give every step its own name",
                )
            invocations.append(
                Invocation(
                    name=s.name,
                    step=sd,
                    inputs={},
                    literals={},
                    call_site=sd.location,
                    outs=tuple(s.outs),
                )
            )
        return build_graph(self.name, self.location, invocations)


class Project:
    """Everything a command needs about one project. Stores open on first use."""

    def __init__(self, root: Path, config: ProjectConfig, environ: Mapping[str, str]) -> None:
        self.root = root
        self.config = config
        self.environ = environ
        self.state_dir = root / ".conveyor"

    def close(self) -> None:
        """Release database connections (the project can be used again afterwards)."""
        engine = self.__dict__.pop("engine", None)
        self.__dict__.pop("metadata", None)
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @functools.cached_property
    def engine(self) -> Any:
        return db.create_engine(self.config.stores.metadata, self.root)

    @functools.cached_property
    def metadata(self) -> MetadataStore:
        db.check_schema(self.engine)
        return MetadataStore(self.engine)

    @functools.cached_property
    def artifacts_url(self) -> str:
        url = self.config.stores.artifacts
        if "://" in url:
            return url
        path = Path(url)
        return str(path if path.is_absolute() else self.root / path)

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        ctx = MaterializeContext(
            trust_pickle=self.config.trust.pickle, skops_types=tuple(self.config.trust.skops_types)
        )
        return ArtifactStore(BlobStore(self.artifacts_url, self.state_dir / "cache"), ctx)

    def pipeline_names(self) -> list[str]:
        return list(self.config.pipelines)

    def pipeline(self, name: str | None) -> Pipeline | CmdPipeline:
        names = self.pipeline_names()
        if name is None:
            name = self.config.default_pipeline or (names[0] if len(names) == 1 else None)
            if name is None:
                raise ConfigError(
                    "which pipeline? "
                    + (
                        f"this project has {names}"
                        if names
                        else "this project declares no pipeline"
                    ),
                    hint="name one: 'conveyor run NAME'"
                    if names
                    else f"add one under pipelines: in {CONFIG_NAME}",
                )
        if name not in self.config.pipelines:
            raise ConfigError(
                f"no pipeline '{name}' in {self.root / CONFIG_NAME}",
                hint=did_you_mean(name, names) or f"pipelines: {names}",
            )
        ref = self.config.pipelines[name]
        if isinstance(ref, CmdPipelineConfig):
            return CmdPipeline(name, ref, str(self.root / CONFIG_NAME))
        return self._import_pipeline(name, ref)

    def _import_pipeline(self, name: str, ref: str) -> Pipeline:
        rel, _, attr = ref.partition(":")
        path = (self.root / rel).resolve()
        where = f"{self.root / CONFIG_NAME}: pipelines.{name}"
        if not path.is_file() or not path.is_relative_to(self.root.resolve()):
            raise ConfigError(
                f"{where}: no file '{rel}' in the project",
                hint="give the path relative to the project directory",
            )
        module_name = ".".join(Path(rel).with_suffix("").parts)
        module = import_project_module(self.root, module_name, path)
        obj = getattr(module, attr, None)
        if obj is None:
            raise ConfigError(
                f"{where}: '{rel}' has no '{attr}'",
                hint=did_you_mean(attr, [n for n in dir(module) if not n.startswith("_")]),
            )
        if not isinstance(obj, Pipeline):
            raise ConfigError(
                f"{where}: '{attr}' in '{rel}' is not a @pipeline function",
                hint="decorate it with @conveyor.pipeline",
            )
        return obj


_LOADED_ROOTS: set[str] = set()


def import_project_module(root: Path, module_name: str, path: Path) -> Any:
    """Import a project module by dotted name with the project root first on sys.path.

    A module of the same name imported from another project is dropped first, so several
    projects can be loaded in one process (as tests do).
    """
    root_s = str(root.resolve())
    # Only this project's root may provide project modules: drop roots of projects loaded
    # before, so their packages cannot shadow this one's.
    sys.path[:] = [p for p in sys.path if p != root_s and p not in _LOADED_ROOTS]
    sys.path.insert(0, root_s)
    top = module_name.split(".")[0]
    others = [r for r in _LOADED_ROOTS if r != root_s]
    for loaded, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        same_top = loaded == top or loaded.startswith(top + ".")
        if file is None:
            if same_top:
                del sys.modules[loaded]
            continue
        # Project modules are imported afresh, as a new process would: their files may have
        # changed since the last load, and the cache key is computed from the files.
        from_project = any(file.startswith(r + os.sep) for r in (*others, root_s))
        installed = "site-packages" in file or "dist-packages" in file
        if loaded == "conveyor" or loaded.startswith("conveyor.") or installed:
            continue
        if from_project or same_top:
            del sys.modules[loaded]
    _LOADED_ROOTS.add(root_s)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except DefinitionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error in user code at import time
        import traceback

        tb = "".join(traceback.format_exception(exc, limit=-3))
        raise DefinitionError(
            f"importing {path} failed:\n{tb.rstrip()}", hint="fix the error in the pipeline module"
        ) from None
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != path.resolve():
        raise DefinitionError(
            f"'{module_name}' was imported from {found or 'a namespace package'}, not from {path}",
            hint=f"another package named '{top}' shadows the project's; rename the project's "
            f"directory, or add an __init__.py to it",
        )
    return module


def open_project(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Project:
    env = os.environ if environ is None else environ
    root = find_project_root(path or Path.cwd())
    config = load_config(root / CONFIG_NAME, env)
    return Project(root, config, env)
