"""A step's code closure and environment lock: the ``code`` and ``env`` parts of its cache key.

The closure is the step function's source, the source of the functions and classes of its own
module that it uses (transitively), the module-level constants it reads, and every
project-local module it imports, with their project-local imports, transitively. Everything
outside the project (site-packages, the standard library) enters through the environment
lock instead: the Python version and the versions of the distributions the closure imports.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata as md
import importlib.util
import inspect
import os
import platform
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conveyor.core.step import Step

_SIMPLE = (str, int, float, bool, bytes, type(None))


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _simple_repr(value: Any, depth: int = 0) -> str | None:
    if isinstance(value, _SIMPLE):
        return repr(value)
    if depth < 3 and isinstance(value, (list, tuple, frozenset, set)):
        items = [_simple_repr(v, depth + 1) for v in value]
        if None in items:
            return None
        if isinstance(value, (set, frozenset)):
            items = sorted(items)  # type: ignore[type-var]
        return f"{type(value).__name__}({', '.join(items)})"  # type: ignore[arg-type]
    if depth < 3 and isinstance(value, dict):
        pairs = [(_simple_repr(k, depth + 1), _simple_repr(v, depth + 1)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(pairs)) + "}"
    return None


class ClosureHasher:
    """Computes code closures under a project root; caches per process."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._steps: dict[int, tuple[dict[str, str], frozenset[str]]] = {}

    def is_local(self, file: str | None) -> bool:
        if not file:
            return False
        try:
            path = Path(file).resolve()
            rel = path.relative_to(self.root)
        except (ValueError, OSError):
            return False
        return not any(p in ("site-packages", "dist-packages", ".venv", "venv") for p in rel.parts)

    def rel(self, file: str) -> str:
        return Path(file).resolve().relative_to(self.root).as_posix()

    def step_code(self, func: Callable[..., Any]) -> tuple[dict[str, str], frozenset[str]]:
        """(code parts, top-level names of external packages used)."""
        cached = self._steps.get(id(func))
        if cached is not None:
            return cached
        parts: dict[str, str] = {}
        externals: set[str] = set()
        self._function(func, parts, externals, set())
        result = (dict(sorted(parts.items())), frozenset(externals))
        self._steps[id(func)] = result
        return result

    def _function(
        self, func: Any, parts: dict[str, str], externals: set[str], seen: set[str]
    ) -> None:
        key = f"{func.__module__}.{func.__qualname__}"
        if key in seen:
            return
        seen.add(key)
        source = _function_source(func)
        parts[key] = _sha(source if source is not None else func.__code__.co_code)
        if source is not None and "import" in source:
            # Imports inside the function body are part of its closure too.
            try:
                tree = ast.parse(textwrap.dedent(source))
            except SyntaxError:
                tree = None
            if tree is not None:
                mod = sys.modules.get(func.__module__)
                own_file = getattr(mod, "__file__", "") or ""
                is_pkg = own_file.endswith("__init__.py")
                package = func.__module__ if is_pkg else func.__module__.rpartition(".")[0]
                local, ext = self._imports(tree, package, own_file)
                externals.update(ext)
                for sub_name, sub_file in local:
                    self._module_file(sub_name, sub_file, parts, externals)
        g = func.__globals__
        for name in dict.fromkeys(_code_names(func.__code__)):
            if name not in g:
                continue
            value = g[name]
            if isinstance(value, Step):
                value = value.definition.func
            self._reference(name, value, func.__module__, parts, externals, seen)

    def _reference(
        self,
        name: str,
        value: Any,
        home: str,
        parts: dict[str, str],
        externals: set[str],
        seen: set[str],
    ) -> None:
        if inspect.ismodule(value):
            file = getattr(value, "__file__", None)
            if self.is_local(file):
                self._module_file(value.__name__, file, parts, externals)  # type: ignore[arg-type]
            else:
                externals.add(value.__name__.split(".")[0])
            return
        if inspect.isfunction(value) or inspect.isclass(value):
            mod_name = getattr(value, "__module__", "") or ""
            mod = sys.modules.get(mod_name)
            file = getattr(mod, "__file__", None)
            if not self.is_local(file):
                externals.add(mod_name.split(".")[0])
            elif mod_name == home and inspect.isfunction(value):
                self._function(value, parts, externals, seen)
            elif mod_name == home:
                try:
                    parts[f"{mod_name}.{value.__qualname__}"] = _sha(inspect.getsource(value))
                except (OSError, TypeError):
                    parts[f"{mod_name}.{value.__qualname__}"] = "unavailable"
                for member in vars(value).values():
                    # What the class's methods use belongs to the closure as well.
                    target = getattr(member, "__func__", None) or getattr(member, "fget", None)
                    target = target or member
                    if inspect.isfunction(target) and target.__module__ == home:
                        self._function(target, parts, externals, seen)
            else:
                self._module_file(mod_name, file, parts, externals)  # type: ignore[arg-type]
            return
        text = _simple_repr(value)
        if text is not None:
            parts[f"{home}:{name}"] = _sha(text)

    def _module_file(
        self, mod_name: str, file: str, parts: dict[str, str], externals: set[str]
    ) -> None:
        digest, local, ext = self._analyse(mod_name, file)
        key = f"module:{self.rel(file)}"
        if key in parts:
            return
        parts[key] = digest
        externals.update(ext)
        for sub_name, sub_file in local:
            self._module_file(sub_name, sub_file, parts, externals)
        if Path(file).name == "__init__.py":
            # `import pkg` then `pkg.sub.f()`: the loaded submodules are reachable from pkg.
            for name, mod in list(sys.modules.items()):
                sub_file = getattr(mod, "__file__", None)
                if name.startswith(mod_name + ".") and self.is_local(sub_file):
                    self._module_file(name, sub_file, parts, externals)  # type: ignore[arg-type]

    def _analyse(self, mod_name: str, file: str) -> tuple[str, tuple[Any, ...], tuple[str, ...]]:
        st = os.stat(file)
        stamp = (file, st.st_mtime_ns, st.st_size)
        cached = _MODULES.get(stamp)
        if cached is not None:
            return cached
        source = Path(file).read_bytes()
        is_pkg = Path(file).name == "__init__.py"
        package = mod_name if is_pkg else mod_name.rpartition(".")[0]
        try:
            tree = ast.parse(source)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        local, ext = self._imports(tree, package, file)
        result = (_sha(source), tuple(dict.fromkeys(local)), tuple(sorted(ext)))
        _MODULES[stamp] = result
        return result

    def _imports(
        self, tree: ast.AST, package: str, own_file: str
    ) -> tuple[list[tuple[str, str]], set[str]]:
        """(project-local modules, external top-level packages) imported anywhere in ``tree``."""
        local: list[tuple[str, str]] = []
        ext: set[str] = set()
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".") if package else []
                    parent = parent[: len(parent) - (node.level - 1)] if node.level > 1 else parent
                    base = ".".join([*parent, base] if base else parent)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                if not name:
                    continue
                sub_file = _module_origin(name)
                if sub_file and self.is_local(sub_file):
                    if sub_file != own_file:
                        local.append((name, sub_file))
                elif sub_file is not None or name == names[0]:
                    top = name.split(".")[0]
                    if top and top not in sys.stdlib_module_names:
                        ext.add(top)
        return local, ext


_MODULES: dict[tuple[str, int, int], tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = {}

# Source text of functions, keyed by where they are and the state of their file: a project
# re-imported for the next run reuses it as long as the file did not change.
_SOURCES: dict[tuple[str, int, str, int, int], str | None] = {}


def _function_source(func: Any) -> str | None:
    code = func.__code__
    try:
        st = os.stat(code.co_filename)
    except OSError:
        return None
    key = (code.co_filename, code.co_firstlineno, func.__qualname__, st.st_mtime_ns, st.st_size)
    if key not in _SOURCES:
        try:
            _SOURCES[key] = inspect.getsource(func)
        except (OSError, TypeError):
            _SOURCES[key] = None
    return _SOURCES[key]


def _module_origin(name: str) -> str | None:
    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__file__", None)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


@functools.cache
def _dist_version(top: str) -> tuple[str, str] | None:
    try:
        return top, md.version(top)
    except md.PackageNotFoundError:
        pass
    for dist in _distributions().get(top, []):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def environment_lock(externals: frozenset[str]) -> dict[str, Any]:
    """Python version and versions of the distributions behind ``externals``."""
    packages: dict[str, str] = {}
    for top in sorted(externals):
        if top in sys.stdlib_module_names or top == "conveyor":
            continue
        found = _dist_version(top)
        if found:
            packages[found[0]] = found[1]
    return {
        "python": platform.python_version(),
        "conveyor": conveyor_version(),
        "packages": packages,
    }


@functools.cache
def conveyor_version() -> str:
    try:
        return md.version("conveyor-ml")
    except md.PackageNotFoundError:
        return "unknown"
