"""The pieces of the package format that need no project: MLflow types, rows that read back
exactly, requirement lines, and the paths a manifest may name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.errors import IntegrityError, UsageError
from conveyor.registry.package import (
    frame_from_split,
    infer_signature,
    is_allowed_type,
    jsonable_rows,
    mlflow_type,
    parse_requirements,
)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([True, False], "bool", "boolean"),
        ([1, 2], "int8", "integer"),
        ([1, 2], "int32", "integer"),
        ([1, 2], "int64", "long"),
        ([1, 2], "uint32", "long"),
        ([1, None], "Int64", "long"),
        ([0.5, 1.5], "float32", "float"),
        ([0.5, None], "float64", "double"),
        (["x", "y"], "object", "string"),
        (["x", "y"], "str", "string"),
        (["x", "y"], "category", "string"),
        (["2024-01-01", "2024-02-01"], "datetime64[ns]", "datetime"),
    ],
)
def test_pandas_dtypes_map_to_mlflow_types(values, dtype, expected) -> None:
    column = pd.Series(values).astype(dtype)
    assert mlflow_type(column.dtype, "c") == expected


def test_a_dtype_without_an_mlflow_type_names_the_column() -> None:
    with pytest.raises(UsageError, match="column 'span' has dtype timedelta64"):
        mlflow_type(pd.Series(pd.to_timedelta([1, 2], unit="s")).dtype, "span")


def test_signature_of_scores_and_of_labels() -> None:
    frame = pd.DataFrame({"x": [0.1, 0.2], "n": [1, 2]})
    sig = infer_signature(frame, np.zeros((2, 3)))
    assert json.loads(sig["inputs"]) == [
        {"type": "double", "name": "x", "required": True},
        {"type": "long", "name": "n", "required": True},
    ]
    assert json.loads(sig["outputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}
    ]
    labels = infer_signature(frame, np.array(["yes", "no"], dtype=object))
    assert json.loads(labels["outputs"]) == [{"type": "string", "required": True}]


def test_rows_read_back_exactly_with_their_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "f": [0.1, np.nan, 1 / 3, 1e-310],
            "i": np.array([1, -2, 3, 2**40], dtype="int64"),
            "s": ["a", "é", None, "d"],
            "b": [True, False, True, True],
            "t": pd.to_datetime(
                ["2020-01-01", None, "2021-06-01T12:00:00.5", "1999-12-31"], format="ISO8601"
            ),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "small": np.array([1, 2, 3, 4], dtype="int32"),
        }
    )
    doc = {**jsonable_rows(frame), "dtypes": {c: str(t) for c, t in frame.dtypes.items()}}
    back = frame_from_split(json.loads(json.dumps(doc)))
    pd.testing.assert_frame_equal(back, frame)
    assert back["f"].tolist()[3] == 1e-310 and math.isnan(back["f"].tolist()[1])


def test_requirement_lines() -> None:
    text = "# pinned\nnumpy==2.0.1\n\nscikit-learn == 1.5.0\nloose-package\n"
    assert parse_requirements(text) == {"numpy": "2.0.1", "scikit-learn": "1.5.0"}


def test_conveyors_skops_allowlist() -> None:
    assert is_allowed_type("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")
    assert is_allowed_type("numpy.dtype")
    assert not is_allowed_type("sklearn.utils._some_function")  # functions stay untrusted
    assert not is_allowed_type("builtins.eval")
    assert is_allowed_type("mylib.Model", extra=["mylib.Model"])


def test_worker_and_library_agree_on_the_allowlist() -> None:
    from conveyor.registry import infra_worker

    for name in ("sklearn.tree._tree.Tree", "numpy.dtype", "sklearn.x.func", "os.system"):
        assert infra_worker.is_allowed(name, []) == is_allowed_type(name)


def test_worker_rebuilds_the_same_frame_as_the_library() -> None:
    from conveyor.registry import infra_worker

    frame = pd.DataFrame({"a": [0.5, 1.5], "k": np.array([1, 2], dtype="int16")})
    doc = {**jsonable_rows(frame), "dtypes": {c: str(t) for c, t in frame.dtypes.items()}}
    pd.testing.assert_frame_equal(infra_worker.golden_frame(doc), frame_from_split(doc))


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "~/x", "a\\..\\x", ""])
def test_paths_that_leave_the_package_are_refused(tmp_path: Path, rel: str) -> None:
    from conveyor.registry.package import _safe_relative

    with pytest.raises(IntegrityError, match="absolute or leaves the package"):
        _safe_relative(tmp_path, rel, "test")


def test_a_link_is_refused_even_inside(tmp_path: Path) -> None:
    from conveyor.registry.package import _safe_relative

    (tmp_path / "real").write_text("x")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert _safe_relative(tmp_path, "real", "test") == tmp_path / "real"
    with pytest.raises(IntegrityError, match="'alias' points outside the package"):
        _safe_relative(tmp_path, "alias", "test")
