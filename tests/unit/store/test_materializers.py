"""Materializers through the artifact store: values round-trip, unsafe formats need trust."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from conveyor.core.records import ArtifactInfo
from conveyor.errors import ConveyorError, DefinitionError, IntegrityError, TrustError
from conveyor.store import materializers as mz
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.blobs import BlobStore
from conveyor.store.materializers import MaterializeContext, register_materializer
from estimators import Clip


def double(X: Any) -> Any:
    return X * 2


@dataclass
class Point:
    x: int
    y: int


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "store"), cache_dir=tmp_path / "cache")


def make_store(blobs: BlobStore, tmp_path: Path, **ctx: Any) -> ArtifactStore:
    return ArtifactStore(blobs, MaterializeContext(scratch=tmp_path / "scratch", **ctx))


@pytest.fixture
def store(blobs: BlobStore, tmp_path: Path) -> ArtifactStore:
    return make_store(blobs, tmp_path)


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """User materializers registered by a test do not leak into other tests."""
    monkeypatch.setattr(mz, "_REGISTRY", [])
    monkeypatch.setattr(mz, "_BY_NAME", dict(mz._BY_NAME))


def round_trip(store: ArtifactStore, value: Any) -> tuple[ArtifactInfo, Any]:
    info = store.save(value)
    assert store.blobs.verify(info.digest)
    return info, store.load(info)


def test_dataframe_round_trip_keeps_dtypes_and_index(store: ArtifactStore) -> None:
    df = pd.DataFrame(
        {
            "count": pd.array([1, None, 3], dtype="Int64"),
            "score": [0.5, 1.5, np.nan],
            "small": np.array([1, 2, 3], dtype="uint8"),
            "city": pd.Categorical(["a", "b", "a"]),
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "flag": [True, False, True],
        },
        index=pd.Index(["r1", "r2", "r3"], name="row_id"),
    )
    info, loaded = round_trip(store, df)
    assert info.materializer == "pandas.parquet"
    assert info.meta["rows"] == 3
    pd.testing.assert_frame_equal(loaded, df)
    assert loaded.index.name == "row_id"


def test_dataframe_with_integer_index_keeps_it(store: ArtifactStore) -> None:
    df = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index([10, 20], name="id"))
    _, loaded = round_trip(store, df)
    pd.testing.assert_frame_equal(loaded, df)


def test_equal_dataframes_have_equal_digests(store: ArtifactStore) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert store.save(df).digest == store.save(df.copy()).digest
    assert store.save(df).digest != store.save(df.assign(a=[1, 2, 4])).digest


def test_arrow_table_round_trip(store: ArtifactStore) -> None:
    table = pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", None]})
    info, loaded = round_trip(store, table)
    assert info.materializer == "arrow.parquet"
    assert loaded.equals(table)
    assert loaded.schema.field("id").type == pa.int32()


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([1, -2, 3], dtype=np.int64),
        np.array([True, False]),
        np.array(["ab", "cde"]),
    ],
    ids=["float32-2d", "int64", "bool", "unicode"],
)
def test_numpy_round_trip(store: ArtifactStore, array: np.ndarray) -> None:
    info, loaded = round_trip(store, array)
    assert info.materializer == "numpy.npy"
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_numpy_object_array_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="numpy array of Python objects") as info:
        store.save(np.array([{"a": 1}, None], dtype=object))
    assert info.value.hint is not None
    assert "dtype" in info.value.hint
    assert list((tmp_path / "store").rglob("*.partial")) == []
    assert list((tmp_path / "store").rglob("objects/*/*")) == []


@pytest.mark.parametrize(
    "value",
    [{"b": [1, 2.5, None], "a": {"nested": True}}, [1, "two", 3.0], "text", 7, 2.5, False, None],
    ids=["dict", "list", "str", "int", "float", "bool", "none"],
)
def test_json_round_trip(store: ArtifactStore, value: Any) -> None:
    info, loaded = round_trip(store, value)
    assert info.materializer == "json"
    assert loaded == value
    assert type(loaded) is type(value)


def test_json_digest_does_not_depend_on_key_order(store: ArtifactStore) -> None:
    assert store.save({"a": 1, "b": 2}).digest == store.save({"b": 2, "a": 1}).digest


def test_json_value_with_non_json_content_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(DefinitionError, match="not JSON"):
        store.save({"when": {1, 2}})


def test_json_dict_with_int_keys_round_trips_or_is_refused(store: ArtifactStore) -> None:
    value = {0: "negative", 1: "positive"}
    try:
        info = store.save(value)
    except DefinitionError:
        return
    assert store.load(info) == value


def test_sklearn_estimator_round_trip_predicts_the_same(
    store: ArtifactStore, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    info, loaded = round_trip(store, model)
    assert info.materializer == "sklearn.skops"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_saving_the_same_estimator_twice_gives_the_same_digest(
    store: ArtifactStore, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    assert store.save(model).digest == store.save(model).digest


def test_equally_fitted_models_give_the_same_digest(
    store: ArtifactStore, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    first = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    second = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    assert store.save(first).digest == store.save(second).digest
    other = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(X, y)
    assert store.save(other).digest != store.save(first).digest


def test_equal_tree_models_give_the_same_digest(
    store: ArtifactStore, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    twin = copy.deepcopy(model)
    np.testing.assert_array_equal(twin.predict_proba(X), model.predict_proba(X))
    assert store.save(model).digest == store.save(twin).digest


def test_custom_estimator_class_needs_trust(
    blobs: BlobStore, tmp_path: Path, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    model = make_pipeline(Clip(limit=0.5), LogisticRegression()).fit(X, y)
    info = make_store(blobs, tmp_path).save(model)
    type_name = f"{Clip.__module__}.Clip"

    with pytest.raises(TrustError, match=type_name) as err:
        make_store(blobs, tmp_path).load(info)
    assert err.value.hint is not None
    assert "skops_types" in err.value.hint

    trusted = make_store(blobs, tmp_path, skops_types=(type_name,))
    loaded = trusted.load(info)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_function_transformer_with_project_function_needs_trust(
    blobs: BlobStore, tmp_path: Path
) -> None:
    model = FunctionTransformer(func=double).fit(np.ones((2, 2)))
    info = make_store(blobs, tmp_path).save(model)
    func_name = f"{double.__module__}.double"
    with pytest.raises(TrustError, match=func_name):
        make_store(blobs, tmp_path).load(info)
    loaded = make_store(blobs, tmp_path, skops_types=(func_name,)).load(info)
    np.testing.assert_array_equal(loaded.transform(np.ones((2, 2))), np.full((2, 2), 2.0))


def test_a_trusted_class_does_not_let_an_untrusted_function_through(
    blobs: BlobStore, tmp_path: Path, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = xy
    model = make_pipeline(Clip(limit=0.5), FunctionTransformer(func=double)).fit(X, y)
    info = make_store(blobs, tmp_path).save(model)
    clip, func = f"{Clip.__module__}.Clip", f"{double.__module__}.double"

    with pytest.raises(TrustError, match=func) as err:
        make_store(blobs, tmp_path, skops_types=(clip,)).load(info)
    assert clip not in err.value.message
    loaded = make_store(blobs, tmp_path, skops_types=(clip, func)).load(info)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


@pytest.mark.parametrize("func", [eval, np.load], ids=["builtins.eval", "numpy.load"])
def test_dangerous_functions_inside_a_model_need_trust(store: ArtifactStore, func: Any) -> None:
    info = store.save(FunctionTransformer(func=func))
    with pytest.raises(TrustError):
        store.load(info)


def test_directory_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "report"
    (src / "plots").mkdir(parents=True)
    (src / "index.html").write_text("<h1>ok</h1>")
    (src / "plots" / "roc.svg").write_text("<svg/>")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)

    info, loaded = round_trip(store, src)
    assert info.materializer == "directory.tar"
    assert info.meta["files"] == 3
    assert loaded.name == "report"
    assert loaded.is_relative_to(tmp_path / "scratch")
    assert (loaded / "index.html").read_text() == "<h1>ok</h1>"
    assert (loaded / "plots" / "roc.svg").read_text() == "<svg/>"
    assert os.stat(loaded / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(loaded / "index.html").st_mode & stat.S_IXUSR


def test_directory_digest_ignores_mtimes(store: ArtifactStore, tmp_path: Path) -> None:
    digests = []
    for i, when in enumerate((1_000_000, 1_700_000_000)):
        root = tmp_path / f"copy{i}" / "data"
        (root / "sub").mkdir(parents=True)
        for rel in ("a.csv", "sub/b.csv"):
            (root / rel).write_text(f"content of {rel}")
            os.utime(root / rel, (when, when))
        digests.append(store.save(root).digest)
    assert digests[0] == digests[1]
    (tmp_path / "copy1" / "data" / "a.csv").write_text("changed")
    assert store.save(tmp_path / "copy1" / "data").digest != digests[0]


def malicious_tar(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink is not None:
            link = tarfile.TarInfo("link")
            link.type = tarfile.SYMTYPE
            link.linkname = symlink
            tar.addfile(link)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_directory_extraction_cannot_escape(
    store: ArtifactStore, tmp_path: Path, kind: str
) -> None:
    victim = tmp_path / "victim.txt"
    if kind == "dotdot":
        data = malicious_tar({"../../victim.txt": b"pwned"})
    elif kind == "absolute":
        data = malicious_tar({str(victim): b"pwned"})
    else:
        data = malicious_tar({}, symlink=str(victim))
    digest, size = store.blobs.put_bytes(data)
    info = ArtifactInfo(
        digest=digest,
        materializer="directory.tar",
        type_name="pathlib.PosixPath",
        size=size,
        meta={"filename": "../../escape"},
    )
    with contextlib.suppress(tarfile.FilterError, ConveyorError):
        store.load(info)
    assert not victim.exists()
    assert not (tmp_path / "escape").exists()


def test_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"\x08\x01binary")
    info, loaded = round_trip(store, src)
    assert info.materializer == "file"
    assert loaded.name == "model.onnx"
    assert loaded.read_bytes() == b"\x08\x01binary"
    assert loaded != src


@pytest.mark.parametrize("recorded", ["..", ".", "", "../../escape", "/etc/passwd"])
def test_recorded_file_names_stay_inside_scratch(
    store: ArtifactStore, tmp_path: Path, recorded: str
) -> None:
    src_file = tmp_path / "one.txt"
    src_file.write_text("one")
    src_dir = tmp_path / "many"
    src_dir.mkdir()
    (src_dir / "two.txt").write_text("two")
    for src in (src_file, src_dir):
        scratch = tmp_path / "deep" / src.name / "scratch"
        saved = store.save(src)
        info = replace(saved, meta={**saved.meta, "filename": recorded})
        loaded = store.load(info, scratch=scratch)
        assert loaded.parent == scratch
        assert loaded.name not in ("", ".", "..")
        assert [p.name for p in scratch.parent.iterdir()] == ["scratch"]


def test_load_verifies_the_blob(store: ArtifactStore) -> None:
    info = store.save({"a": 1})
    store.blobs.local_path(info.digest).write_text('{"a": 2}')
    with pytest.raises(IntegrityError):
        store.load(info)


def test_value_without_materializer_is_refused_with_a_hint(store: ArtifactStore) -> None:
    with pytest.raises(
        DefinitionError, match=r"no materializer for values of type .*Point"
    ) as info:
        store.save(Point(1, 2))
    hint = info.value.hint
    assert hint is not None
    assert "register_materializer" in hint
    assert "trust: {pickle: true}" in hint


def test_pickle_only_when_trusted(blobs: BlobStore, tmp_path: Path) -> None:
    trusted = make_store(blobs, tmp_path, trust_pickle=True)
    info = trusted.save(Point(1, 2))
    assert info.materializer == "pickle"
    assert trusted.load(info) == Point(1, 2)

    with pytest.raises(TrustError, match="pickle") as err:
        make_store(blobs, tmp_path).load(info)
    assert err.value.hint is not None
    assert "trust: {pickle: true}" in err.value.hint


def test_trusting_pickle_does_not_replace_safe_formats(blobs: BlobStore, tmp_path: Path) -> None:
    trusted = make_store(blobs, tmp_path, trust_pickle=True)
    assert trusted.save({"a": 1}).materializer == "json"
    assert trusted.save(np.zeros(2)).materializer == "numpy.npy"


class PointJson:
    name = "test.point"

    def handles(self, kind: type) -> bool:
        return kind is Point

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        dest.write_text(json.dumps([value.x, value.y]))
        return {"fields": 2}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        return Point(*json.loads(path.read_text()))


class ArrayAsText:
    name = "test.array-text"

    def handles(self, kind: type) -> bool:
        return issubclass(kind, np.ndarray)

    def save(self, value: Any, dest: Path, ctx: MaterializeContext) -> dict[str, Any]:
        dest.write_text(" ".join(map(str, value.tolist())))
        return {}

    def load(self, path: Path, meta: dict[str, Any], ctx: MaterializeContext) -> Any:
        return np.array([float(v) for v in path.read_text().split()])


@pytest.mark.usefixtures("isolated_registry")
def test_registered_materializer_handles_new_type(store: ArtifactStore) -> None:
    register_materializer(PointJson())
    info, loaded = round_trip(store, Point(3, 4))
    assert info.materializer == "test.point"
    assert info.meta == {"fields": 2}
    assert loaded == Point(3, 4)


@pytest.mark.usefixtures("isolated_registry")
def test_registered_materializer_takes_precedence_over_builtin(store: ArtifactStore) -> None:
    register_materializer(ArrayAsText())
    info, loaded = round_trip(store, np.array([1.5, 2.5]))
    assert info.materializer == "test.array-text"
    assert store.blobs.get_bytes(info.digest) == b"1.5 2.5"
    np.testing.assert_array_equal(loaded, [1.5, 2.5])


@pytest.mark.usefixtures("isolated_registry")
def test_register_refuses_builtin_names_and_non_materializers() -> None:
    clash = PointJson()
    clash.name = "json"
    with pytest.raises(DefinitionError, match="built-in materializer is already named 'json'"):
        register_materializer(clash)
    with pytest.raises(DefinitionError, match="Materializer protocol"):
        register_materializer(object())  # type: ignore[arg-type]


def test_unknown_materializer_name_on_load(store: ArtifactStore) -> None:
    digest, size = store.blobs.put_bytes(b"x")
    info = ArtifactInfo(digest=digest, materializer="gone", type_name="x.Y", size=size)
    with pytest.raises(DefinitionError, match="no materializer named 'gone'") as err:
        store.load(info)
    assert err.value.hint is not None
    assert "register_materializer" in err.value.hint
