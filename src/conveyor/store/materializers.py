"""Materializers turn step outputs into one file of bytes and back.

Built in: pandas DataFrames and Arrow tables as Parquet, numpy arrays (``.npy`` without
pickle), JSON values, scikit-learn estimators through skops with a trusted-type allowlist,
files and directories (a deterministic tar). Pickle only when the project sets
``trust: {pickle: true}``. Users add their own with :func:`register_materializer`.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from conveyor.errors import DefinitionError, TrustError

# Types skops does not trust by default but every scikit-learn model needs: the estimators'
# own classes (trees, predictors) and numpy's dtype. Functions and other modules stay untrusted.
SAFE_SKOPS_PREFIXES = ("sklearn.",)
SAFE_SKOPS_TYPES = ("numpy.dtype",)


@dataclass(frozen=True, slots=True, kw_only=True)
class MaterializeContext:
    trust_pickle: bool = False
    skops_types: tuple[str, ...] = ()
    scratch: Path = field(default_factory=lambda: Path())


@runtime_checkable
class Materializer(Protocol):
    """Save values of some types to one file, and load them back."""

    name: str

    def handles(self, kind: type) -> bool:
        """True when values of type ``kind`` can be saved by this materializer."""
        ...

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        """Write ``value`` to the file ``dest``; return small JSON metadata to keep with it."""
        ...

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any: ...


def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_subclass_named(kind: type, names: tuple[str, ...]) -> bool:
    return any(_qualname(k) in names for k in getattr(kind, "__mro__", ()))


class PandasParquet:
    name = "pandas.parquet"

    def handles(self, kind: type) -> bool:
        return _is_subclass_named(kind, ("pandas.DataFrame", "pandas.core.frame.DataFrame"))

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(value)
        pq.write_table(table, dest)
        return {"rows": table.num_rows, "columns": list(map(str, value.columns))}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pandas()


class ArrowParquet:
    name = "arrow.parquet"

    def handles(self, kind: type) -> bool:
        return _is_subclass_named(kind, ("pyarrow.lib.Table",))

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        import pyarrow.parquet as pq

        pq.write_table(value, dest)
        return {"rows": value.num_rows, "columns": list(value.column_names)}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path)


class NumpyArray:
    name = "numpy.npy"

    def handles(self, kind: type) -> bool:
        return _is_subclass_named(kind, ("numpy.ndarray",))

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        import numpy as np

        if value.dtype.hasobject:
            raise DefinitionError(
                "a numpy array of Python objects cannot be stored without pickle",
                hint="convert it to a numeric or string dtype, or return a DataFrame",
            )
        with open(dest, "wb") as f:
            np.save(f, value, allow_pickle=False)
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)


JSON_TYPES: tuple[type, ...] = (dict, list, str, int, float, bool, type(None))


def _check_json_keys(value: Any, where: str) -> None:
    """JSON turns every key into a string; refuse values that would not come back equal."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DefinitionError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; JSON artifacts "
                    "need string keys, or the value would load back changed",
                    hint="convert the keys with str(), or return a DataFrame",
                )
            _check_json_keys(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_keys(item, f"{where}[{i}]")


class JsonValue:
    name = "json"

    def handles(self, kind: type) -> bool:
        return kind in JSON_TYPES or getattr(kind, "__origin__", None) in (dict, list)

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        _check_json_keys(value, "value")
        try:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1)
        except TypeError as exc:
            raise DefinitionError(f"value is not JSON: {exc}") from None
        dest.write_text(text, encoding="utf-8")
        return {"json_type": type(value).__name__}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


def _renumber_skops(schema: Any, ids: dict[int, int]) -> Any:
    """Replace skops' memory-address ids (``__id__`` and ``<id>.npy`` file names) by their
    order of appearance, so that the same model gives the same bytes in every process."""

    def new_id(old: int) -> int:
        return ids.setdefault(old, len(ids) + 1)

    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = new_id(value)
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                stem = value.removesuffix(".npy")
                out[key] = f"{new_id(int(stem))}.npy" if stem.isdigit() else value
            else:
                out[key] = _renumber_skops(value, ids)
        return out
    if isinstance(schema, list):
        return [_renumber_skops(v, ids) for v in schema]
    return schema


def _zero_padding(npy: bytes) -> bytes:
    """Rewrite a structured array whose dtype has padding (scikit-learn's tree nodes do) with
    zeroed padding bytes, which are otherwise uninitialised memory."""
    import numpy as np

    arr = np.load(io.BytesIO(npy), allow_pickle=False)
    dt = arr.dtype
    if dt.names is None or dt.itemsize == sum(dt.fields[n][0].itemsize for n in dt.names):
        return npy
    clean = np.zeros(arr.shape, dtype=dt)
    for field_name in dt.names:
        clean[field_name] = arr[field_name]
    out = io.BytesIO()
    np.save(out, clean, allow_pickle=False)
    return out.getvalue()


def normalized_skops(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    ids: dict[int, int] = {}
    schema = _renumber_skops(json.loads(src.read("schema.json")), ids)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        entries = {"schema.json": json.dumps(schema, indent=1, sort_keys=True).encode()}
        for info in src.infolist():
            stem = info.filename.removesuffix(".npy")
            if info.filename.endswith(".npy") and stem.isdigit():
                name = f"{ids.setdefault(int(stem), len(ids) + 1)}.npy"
                entries[name] = _zero_padding(src.read(info))
            elif info.filename != "schema.json":
                entries[info.filename] = src.read(info)
        for name in sorted(entries):
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, entries[name])
    return out.getvalue()


class SkopsEstimator:
    name = "sklearn.skops"

    def handles(self, kind: type) -> bool:
        return _is_subclass_named(kind, ("sklearn.base.BaseEstimator",))

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        sio = skops_io()
        dest.write_bytes(normalized_skops(sio.dumps(value)))
        return {"class": _qualname(type(value))}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        sio = skops_io()
        from skops.io.exceptions import UntrustedTypesFoundException

        data = path.read_bytes()
        # One pass over the file (each pass reads every array): skops loads it only if each
        # type it does not trust by itself is among the schema's types that we trust. Only
        # when it finds another does it take the second pass below, to name the refused types.
        trusted = [t for t in _skops_schema_types(data) if _trusted_skops_type(t, ctx)]
        try:
            return sio.loads(data, trusted=trusted)
        except UntrustedTypesFoundException:
            pass
        untrusted = sio.get_untrusted_types(data=data)
        refused = [t for t in untrusted if not _trusted_skops_type(t, ctx)]
        if refused:
            raise TrustError(
                f"the model uses types that are not trusted: {', '.join(sorted(refused))}",
                hint="if you trust them, list them under trust: {skops_types: [...]} in "
                "conveyor.yaml",
            )
        return sio.loads(data, trusted=untrusted)


def skops_io() -> Any:
    """``skops.io``, imported without its list of every scikit-learn estimator.

    On import, skops builds its default trusted types from ``sklearn.utils.all_estimators()``,
    which imports every module of scikit-learn: 0.25-0.45 s of a prediction service's cold
    start, measured beside an import of scikit-learn's linear models. Conveyor never relies
    on that list: each load passes, as ``trusted``, the types of the file that Conveyor's own
    allowlist admits (every scikit-learn class among them), so skops is imported with the
    list empty. A smaller default can only make skops trust less.
    """
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = every_estimator
    return skops.io


def _no_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    return []


def _trusted_skops_type(name: str, ctx: MaterializeContext) -> bool:
    """Conveyor's skops allowlist: scikit-learn classes, numpy's dtype, and the project's
    ``trust.skops_types``."""
    sklearn_class = name.startswith(SAFE_SKOPS_PREFIXES) and name.rpartition(".")[2][:1].isupper()
    return sklearn_class or name in SAFE_SKOPS_TYPES or name in ctx.skops_types


def _skops_schema_types(data: bytes) -> set[str]:
    """The ``module.Class`` names of the objects in a skops file's ``schema.json`` (none when
    it cannot be read: skops then says why)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = json.loads(z.read("schema.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return set()
    names: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                names.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def safe_filename(recorded: Any) -> str:
    """The base name recorded with a file artifact, never a path that could leave a directory."""
    name = Path(str(recorded or "data")).name
    return "data" if name in ("", ".", "..") else name


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
    return info


class DirectoryTar:
    name = "directory.tar"

    def handles(self, kind: type) -> bool:
        return False  # chosen by value: a Path to a directory

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        root = Path(value)
        count = 0
        with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(root)
                for name in sorted(filenames):
                    full = Path(dirpath, name)
                    tar.add(full, arcname=str(rel_dir / name), recursive=False, filter=_tar_filter)
                    count += 1
        from conveyor.store.blobs import tree_digest

        return {"filename": root.name, "files": count, "tree": tree_digest(root)}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        name = safe_filename(meta.get("filename"))
        target = ctx.scratch / name
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")
        return target


class SingleFile:
    name = "file"

    def handles(self, kind: type) -> bool:
        return False  # chosen by value: a Path to a file

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        import shutil

        shutil.copyfile(value, dest)
        return {"filename": Path(value).name}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        import shutil

        name = safe_filename(meta.get("filename"))
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        target = ctx.scratch / name
        shutil.copyfile(path, target)
        return target


class Pickle:
    name = "pickle"

    def handles(self, kind: type) -> bool:
        return False

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        import pickle

        if not ctx.trust_pickle:
            raise TrustError("pickle is disabled")
        with open(dest, "wb") as f:
            pickle.dump(value, f, protocol=5)
        return {"class": _qualname(type(value))}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        import pickle

        if not ctx.trust_pickle:
            raise TrustError(
                "this artifact was stored with pickle, and loading it could run arbitrary code",
                hint="only if you trust where it came from, set trust: {pickle: true} in "
                "conveyor.yaml",
            )
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - only reached when the project trusts pickle


_REGISTRY: list[Materializer] = []
_BUILTIN: list[Materializer] = [
    PandasParquet(),
    ArrowParquet(),
    NumpyArray(),
    SkopsEstimator(),
    JsonValue(),
]
_BY_NAME: dict[str, Materializer] = {
    m.name: m for m in (*_BUILTIN, DirectoryTar(), SingleFile(), Pickle())
}


def register_materializer(materializer: Materializer) -> Materializer:
    """Add a materializer; it is tried before the built-in ones."""
    if not isinstance(materializer, Materializer):
        raise DefinitionError(f"{materializer!r} does not implement the Materializer protocol")
    if materializer.name in _BY_NAME and _BY_NAME[materializer.name] not in _REGISTRY:
        raise DefinitionError(f"a built-in materializer is already named '{materializer.name}'")
    _REGISTRY[:] = [m for m in _REGISTRY if m.name != materializer.name]
    _REGISTRY.insert(0, materializer)
    _BY_NAME[materializer.name] = materializer
    return materializer


def by_name(name: str) -> Materializer:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise DefinitionError(
            f"no materializer named '{name}' is registered",
            hint="import the module that calls register_materializer(...) in your pipeline",
        ) from None


def choose(value: Any, ctx: MaterializeContext) -> Materializer:
    """The materializer for ``value``: registered ones first, then by type, then pickle."""
    kind = type(value)
    if isinstance(value, os.PathLike):
        return _BY_NAME["directory.tar"] if Path(value).is_dir() else _BY_NAME["file"]
    for m in (*_REGISTRY, *_BUILTIN):
        if m.handles(kind):
            return m
    if ctx.trust_pickle:
        return _BY_NAME["pickle"]
    raise DefinitionError(
        f"Conveyor has no materializer for values of type {_qualname(kind)}",
        hint="return a DataFrame, Arrow table, numpy array, JSON value, scikit-learn estimator "
        "or Path; or register a materializer with conveyor.register_materializer(...); or, if "
        "you accept pickle, set trust: {pickle: true} in conveyor.yaml",
    )
