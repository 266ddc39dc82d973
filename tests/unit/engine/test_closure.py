"""Code closures: a step's code part changes when code it uses changes, and only then."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from conveyor.engine.closure import ClosureHasher, environment_lock
from helpers import write_files

STEPS = """
    import json

    import numpy as np

    from conveyor import step
    from {pkg} import features

    THRESHOLD = {threshold}
    COLUMNS = ("a", "b")


    def helper(x):
        return x + {helper_inc}


    def unrelated():
        return {unrelated}


    @step
    def step_a(x: int) -> int:
        return helper(x) + int(np.sum([THRESHOLD]))


    @step
    def step_b(x: int) -> str:
        return json.dumps([features.scale(x), list(COLUMNS)])
"""

FEATURES = """
    def scale(x):
        return x * {factor}
"""

DEFAULTS = {"threshold": 1, "helper_inc": 1, "unrelated": 0, "factor": 2}


class Project:
    """A small project package on disk that can be edited and re-imported."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pkg = f"closure_pkg_{uuid.uuid4().hex[:12]}"
        self.values = dict(DEFAULTS)

    def write(self, **values: object) -> None:
        self.values.update(values)
        v = self.values
        write_files(
            self.root,
            {
                f"{self.pkg}/__init__.py": "",
                f"{self.pkg}/steps.py": STEPS.format(pkg=self.pkg, **v),
                f"{self.pkg}/features.py": FEATURES.format(**v),
            },
        )

    def forget(self) -> None:
        for name in [m for m in sys.modules if m.split(".")[0] == self.pkg]:
            del sys.modules[name]

    def load(self, module: str = "steps") -> ModuleType:
        """Import the package afresh, as a new process would after the files changed."""
        self.forget()
        importlib.invalidate_caches()
        return importlib.import_module(f"{self.pkg}.{module}")

    def code(self, step_name: str, module: str = "steps") -> dict[str, str]:
        mod = self.load(module)
        parts, _ = ClosureHasher(self.root).step_code(getattr(mod, step_name).definition.func)
        return parts


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    # Rewritten files may keep their size and mtime second; never let a stale .pyc win.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    proj = Project(tmp_path)
    proj.write()
    yield proj
    proj.forget()


def test_closure_lists_the_code_a_step_uses(project: Project) -> None:
    a = project.code("step_a")
    b = project.code("step_b")
    pkg = project.pkg
    assert set(a) == {f"{pkg}.steps.step_a", f"{pkg}.steps.helper", f"{pkg}.steps:THRESHOLD"}
    assert set(b) == {f"{pkg}.steps.step_b", f"module:{pkg}/features.py", f"{pkg}.steps:COLUMNS"}


def test_closure_is_stable_across_imports(project: Project) -> None:
    assert project.code("step_a") == project.code("step_a")
    assert project.code("step_b") == project.code("step_b")


def test_changing_a_helper_changes_only_the_step_using_it(project: Project) -> None:
    a, b = project.code("step_a"), project.code("step_b")
    project.write(helper_inc=2)
    a2, b2 = project.code("step_a"), project.code("step_b")
    assert a2 != a
    assert [k for k in a if a[k] != a2[k]] == [f"{project.pkg}.steps.helper"]
    assert b2 == b


def test_changing_an_imported_local_module_changes_the_step_importing_it(
    project: Project,
) -> None:
    a, b = project.code("step_a"), project.code("step_b")
    project.write(factor=3)
    a2, b2 = project.code("step_a"), project.code("step_b")
    assert [k for k in b if b[k] != b2[k]] == [f"module:{project.pkg}/features.py"]
    assert a2 == a


def test_changing_an_unrelated_function_changes_nothing(project: Project) -> None:
    a, b = project.code("step_a"), project.code("step_b")
    project.write(unrelated=42)
    assert project.code("step_a") == a
    assert project.code("step_b") == b


def test_module_constant_read_by_the_step_is_included(project: Project) -> None:
    a, b = project.code("step_a"), project.code("step_b")
    project.write(threshold=2)
    a2 = project.code("step_a")
    assert [k for k in a if a[k] != a2[k]] == [f"{project.pkg}.steps:THRESHOLD"]
    assert project.code("step_b") == b


def test_externals_are_locked_with_versions_and_stdlib_is_not(project: Project) -> None:
    mod = project.load()
    hasher = ClosureHasher(project.root)
    _, ext_a = hasher.step_code(mod.step_a.definition.func)
    _, ext_b = hasher.step_code(mod.step_b.definition.func)
    assert "numpy" in ext_a
    lock = environment_lock(ext_a | ext_b)
    assert lock["packages"]["numpy"] == np.__version__
    assert "json" not in lock["packages"]
    assert project.pkg not in lock["packages"]
    assert lock["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment_lock(ext_b)["packages"] == {}


def test_external_imported_by_a_local_module_is_locked(project: Project) -> None:
    write_files(
        project.root,
        {f"{project.pkg}/features.py": "import numpy\n\ndef scale(x):\n    return x * 2\n"},
    )
    mod = project.load()
    _, externals = ClosureHasher(project.root).step_code(mod.step_b.definition.func)
    assert "numpy" in externals


def test_code_outside_the_project_root_is_not_followed(project: Project) -> None:
    mod = project.load()
    other_root = project.root / "elsewhere"
    other_root.mkdir()
    parts, _ = ClosureHasher(other_root).step_code(mod.step_b.definition.func)
    assert set(parts) == {f"{project.pkg}.steps.step_b", f"{project.pkg}.steps:COLUMNS"}


EXTRA_STEPS = """
    from conveyor import step


    def _bump(x):
        return x + {bump}


    class Tool:
        def run(self, x):
            return _bump(x)


    @step
    def uses_class(x: int) -> int:
        return Tool().run(x)


    @step
    def imports_inside(x: int) -> int:
        from {pkg}.features import scale

        return scale(x)
"""


@pytest.fixture
def extra(project: Project) -> Project:
    write_files(
        project.root,
        {f"{project.pkg}/extra.py": EXTRA_STEPS.format(pkg=project.pkg, bump=1)},
    )
    return project


def test_helper_called_by_a_class_method_is_in_the_closure(extra: Project) -> None:
    before = extra.code("uses_class", "extra")
    write_files(
        extra.root,
        {f"{extra.pkg}/extra.py": EXTRA_STEPS.format(pkg=extra.pkg, bump=2)},
    )
    assert extra.code("uses_class", "extra") != before


def test_local_module_imported_inside_the_step_is_in_the_closure(extra: Project) -> None:
    before = extra.code("imports_inside", "extra")
    extra.write(factor=5)
    assert extra.code("imports_inside", "extra") != before
