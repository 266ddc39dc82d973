"""Reading CSV and Parquet for checks, and the clear errors for files that cannot be read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.checks.datasets import (
    ValueKind,
    as_frame,
    column_names,
    read_table,
    text_counts,
    value_kind,
)
from conveyor.errors import EXIT_USAGE, UsageError


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, np.nan, 2.5],
            "region": ["north", "south", None],
        }
    )


def read_error(path: Path) -> UsageError:
    with pytest.raises(UsageError) as info:
        read_table(path)
    assert info.value.exit_code == EXIT_USAGE
    assert str(path) in info.value.message
    return info.value


def test_csv_is_read_with_its_header_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    frame().to_csv(path, index=False)
    got = read_table(path)
    assert list(got.columns) == ["id", "score", "region"]
    assert got["id"].tolist() == [1, 2, 3]
    assert got["score"].isna().tolist() == [False, True, False]
    assert got["region"].isna().sum() == 1


@pytest.mark.parametrize("suffix", [".parquet", ".pq", ".PARQUET"])
def test_parquet_is_read_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    frame().to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), frame())


def test_directory_of_parquet_files_is_read_whole_skipping_marker_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), data / "part-0.parquet")
    pq.write_table(pa.table({"x": [3]}), data / "part-1.parquet")
    (data / "_SUCCESS").write_text("")
    (data / "README.txt").write_text("not data")
    got = read_table(data)
    assert sorted(got["x"].tolist()) == [1, 2, 3]


def test_hive_partitions_of_a_directory_become_columns(tmp_path: Path) -> None:
    for region, values in (("north", [1, 2]), ("south", [3])):
        part = tmp_path / "data" / f"region={region}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"x": values}), part / "0.parquet")
    got = read_table(tmp_path / "data").sort_values("x")
    assert got["x"].tolist() == [1, 2, 3]
    assert [str(v) for v in got["region"]] == ["north", "north", "south"]


def test_missing_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    err = read_error(tmp_path / "nope.csv")
    assert "no such file" in err.message


def test_unknown_suffix_names_the_formats_that_work(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04")
    err = read_error(path)
    assert "'.xlsx'" in err.message
    assert err.hint is not None and ".csv" in err.hint and ".parquet" in err.hint


def test_file_without_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("a,b\n1,2\n")
    assert "(no suffix)" in read_error(path).message


def test_corrupt_parquet_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    err = read_error(path)
    assert "cannot read as Parquet" in err.message
    assert err.hint is not None and "write it again" in err.hint


def test_truncated_parquet_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])
    assert "cannot read as Parquet" in read_error(path).message


def test_empty_csv_says_a_header_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("")
    err = read_error(path)
    assert "empty" in err.message
    assert err.hint is not None and "header" in err.hint


def test_ragged_csv_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n1,2,3,4\n")
    err = read_error(path)
    assert "cannot read as CSV" in err.message
    assert "line 3" in err.message


def test_csv_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("name\ncafé\n".encode("utf-16"))
    assert "cannot read as CSV" in read_error(path).message


def test_directory_without_parquet_files_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("hi")
    assert "no .parquet or .pq files" in read_error(tmp_path / "data").message


def test_as_frame_accepts_arrow_tables_and_batches() -> None:
    table = pa.table({"x": [1, 2], "s": ["a", "b"]})
    assert as_frame(table)["x"].tolist() == [1, 2]
    assert as_frame(table.to_batches()[0])["s"].tolist() == ["a", "b"]
    df = frame()
    assert as_frame(df) is df


def test_as_frame_refuses_other_values() -> None:
    with pytest.raises(UsageError, match="not list"):
        as_frame([1, 2, 3])


def test_duplicate_column_names_are_refused_by_name() -> None:
    df = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(UsageError, match="'a'"):
        column_names(df)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, None], ValueKind.INTEGER),
        ([1.5, 2, None], ValueKind.FLOAT),
        ([True, None], ValueKind.BOOLEAN),
        ([1, "a"], ValueKind.STRING),
        ([None, None], ValueKind.EMPTY),
        ([pd.Timestamp("2024-01-01"), None], ValueKind.DATETIME),
    ],
)
def test_object_columns_are_classified_by_their_values(values: list[object], kind: str) -> None:
    assert value_kind(pd.Series(values, dtype=object)) == kind


def test_text_counts_merge_values_with_one_text_form() -> None:
    counts = text_counts(pd.Series([1, "1", "a", None, "a", "a"], dtype=object))
    assert counts.to_dict() == {"a": 3, "1": 2}
