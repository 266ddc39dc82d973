"""Schema inference and its YAML form: what is inferred, the round trip, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.checks.schema import (
    AnomalyKind,
    ColumnSchema,
    InferOptions,
    LogicalType,
    Schema,
    infer_schema,
    load_schema,
    save_schema,
    schema_from_yaml,
    schema_to_yaml,
)
from conveyor.core.checks import Severity
from conveyor.errors import EXIT_USAGE, ConfigError, UsageError

N = 200


EXACT = InferOptions(range_margin=0.0)  # ranges exactly as observed


def applications() -> pd.DataFrame:
    """A realistic training frame: ids, numbers with nulls, categories, text, dates, flags."""
    rng = np.random.default_rng(7)
    income = rng.normal(50_000, 8_000, N).round(2)
    income[:10] = np.nan  # 5% nulls
    region = rng.choice(["north", "south", "east", "west"], N).astype(object)
    region[:4] = None  # 2% nulls
    return pd.DataFrame(
        {
            "application_id": np.arange(1000, 1000 + N),
            "age": rng.integers(18, 80, N),
            "income": income,
            "region": region,
            "employment": pd.Categorical(rng.choice(["salaried", "self"], N)),
            "email": [f"user{i}@example.com" for i in range(N)],
            "applied_at": pd.date_range("2024-01-01", periods=N, freq="D"),
            "defaulted": rng.random(N) < 0.2,
        }
    )


def test_inference_on_a_realistic_frame() -> None:
    df = applications()
    schema = infer_schema(df, EXACT)
    assert schema.version == 1
    assert schema.rows == N
    assert schema.names == list(df.columns)
    col = {c.name: c for c in schema.columns}

    assert col["application_id"] == ColumnSchema(
        name="application_id", type=LogicalType.INTEGER, min=1000, max=1000 + N - 1, unique=True
    )
    assert col["age"].type == LogicalType.INTEGER
    assert (col["age"].min, col["age"].max) == (df["age"].min(), df["age"].max())
    assert col["age"].unique is False  # 200 ages in 62 values repeat

    assert col["income"].type == LogicalType.FLOAT
    assert col["income"].min == df["income"].min() and col["income"].max == df["income"].max()
    assert col["income"].max_null_fraction == pytest.approx(0.075)  # 5% observed * 1.5

    assert col["region"].type == LogicalType.CATEGORICAL
    assert col["region"].domain == ("east", "north", "south", "west")
    assert col["region"].max_null_fraction == pytest.approx(0.03)  # 2% observed * 1.5
    assert col["employment"].domain == ("salaried", "self")

    assert col["email"].type == LogicalType.TEXT
    assert col["email"].unique is True
    assert col["email"].domain is None

    assert col["applied_at"].type == LogicalType.DATETIME
    assert col["applied_at"].min == datetime(2024, 1, 1)
    assert col["applied_at"].max == datetime(2024, 1, 1) + pd.Timedelta(days=N - 1)

    assert col["defaulted"] == ColumnSchema(name="defaulted", type=LogicalType.BOOLEAN)


@pytest.mark.parametrize(
    ("nulls", "rows", "allowed"),
    [(0, 100, 0.0), (10, 100, 0.15), (1, 1000, 0.011), (100, 100, 1.0), (90, 100, 1.0)],
)
def test_allowed_nulls_are_observed_plus_slack_capped_at_one(
    nulls: int, rows: int, allowed: float
) -> None:
    values = [np.nan] * nulls + [1.0] * (rows - nulls)
    column = infer_schema(pd.DataFrame({"x": values})).columns[0]
    assert column.max_null_fraction == pytest.approx(allowed)


def test_null_slack_is_configurable() -> None:
    df = pd.DataFrame({"x": [np.nan] * 10 + [1.0] * 90})
    opts = InferOptions(null_slack=3.0, null_margin=0.0)
    assert infer_schema(df, opts).columns[0].max_null_fraction == pytest.approx(0.3)


def test_few_distinct_strings_are_categorical_many_are_text() -> None:
    fifty = [f"v{i:02d}" for i in range(50)] * 2
    fifty_one = [f"v{i:02d}" for i in range(51)] * 2
    schema = infer_schema(pd.DataFrame({"a": fifty, "b": fifty_one[:100]}))
    assert schema.columns[0].type == LogicalType.CATEGORICAL
    assert len(schema.columns[0].domain or ()) == 50
    assert schema.columns[1].type == LogicalType.TEXT


def test_many_categories_that_repeat_a_lot_are_still_categorical() -> None:
    # 300 distinct values over 100,000 rows: 0.3% distinct, under the 1% ratio and the 1000 cap
    values = [f"shop{i}" for i in range(300)] * 334
    column = infer_schema(pd.DataFrame({"shop": values[:100_000]})).columns[0]
    assert column.type == LogicalType.CATEGORICAL
    assert len(column.domain or ()) == 300


def test_uniqueness_needs_enough_rows_to_mean_something() -> None:
    schema = infer_schema(pd.DataFrame({"few": np.arange(19), "ids": np.arange(19)}))
    assert not any(c.unique for c in schema.columns)
    schema = infer_schema(pd.DataFrame({"ids": np.arange(20)}))
    assert schema.columns[0].unique is True


def test_unique_strings_are_identifiers_not_categories() -> None:
    column = infer_schema(pd.DataFrame({"code": [f"c{i}" for i in range(30)]})).columns[0]
    assert column.type == LogicalType.TEXT
    assert column.unique is True


def test_arrow_table_gives_the_same_schema_as_its_frame() -> None:
    df = applications()
    assert infer_schema(pa.Table.from_pandas(df, preserve_index=False)) == infer_schema(df)


# --- edge cases from the issue --------------------------------------------------------------


def test_empty_data_takes_types_from_dtypes_without_ranges() -> None:
    df = applications().iloc[0:0].assign(notes=pd.Series([], dtype=object))
    schema = infer_schema(df)
    col = {c.name: c for c in schema.columns}
    assert schema.rows == 0
    assert col["age"].type == LogicalType.INTEGER
    assert col["income"].type == LogicalType.FLOAT
    assert col["applied_at"].type == LogicalType.DATETIME
    assert col["defaulted"].type == LogicalType.BOOLEAN
    assert col["employment"].type == LogicalType.CATEGORICAL  # the dtype lists its categories
    assert col["region"].type == LogicalType.TEXT  # a string dtype: text
    assert col["notes"].type == LogicalType.NULL  # object dtype, no value: nothing known
    assert all(c.min is None and c.max is None for c in schema.columns)
    assert all(c.max_null_fraction == 1.0 for c in schema.columns)
    assert not any(c.unique for c in schema.columns)


def test_header_only_csv_infers_null_columns(tmp_path: Path) -> None:
    from conveyor.checks.datasets import read_table

    (tmp_path / "d.csv").write_text("a,b\n")
    schema = infer_schema(read_table(tmp_path / "d.csv"))
    assert [c.type for c in schema.columns] == [LogicalType.NULL, LogicalType.NULL]


def test_single_row() -> None:
    df = applications().iloc[:1]
    col = {c.name: c for c in infer_schema(df).columns}
    assert col["age"].min == col["age"].max == df["age"].iloc[0]
    assert col["region"].max_null_fraction == 1.0  # its one value is null
    assert col["email"].type == LogicalType.CATEGORICAL
    assert col["email"].domain == ("user0@example.com",)
    assert not any(c.unique for c in col.values())


def test_all_null_columns_keep_their_dtype_and_allow_only_nulls() -> None:
    df = pd.DataFrame(
        {
            "f": [np.nan] * 5,
            "o": [None] * 5,
            "i": pd.array([None] * 5, dtype="Int64"),
            "t": pd.Series([None] * 5, dtype="datetime64[ns]"),
        }
    )
    col = {c.name: c for c in infer_schema(df).columns}
    assert col["f"] == ColumnSchema(name="f", type=LogicalType.FLOAT, max_null_fraction=1.0)
    assert col["o"] == ColumnSchema(name="o", type=LogicalType.NULL, max_null_fraction=1.0)
    assert col["i"].type == LogicalType.INTEGER and col["i"].min is None
    assert col["t"].type == LogicalType.DATETIME and col["t"].max is None


def test_nan_is_null_and_infinity_is_left_out_of_the_range() -> None:
    df = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 3.5]})
    column = infer_schema(df, EXACT).columns[0]
    assert (column.min, column.max) == (1.0, 3.5)
    assert column.max_null_fraction == pytest.approx(0.3)  # 1 of 5 observed, + 50%
    assert column.allow_infinite is False  # infinity is never inferred as allowed


def test_only_infinities_give_no_range() -> None:
    column = infer_schema(pd.DataFrame({"x": [np.inf, -np.inf]})).columns[0]
    assert column.type == LogicalType.FLOAT
    assert column.min is None and column.max is None


def test_mixed_types_in_an_object_column_are_categories_by_text_form() -> None:
    df = pd.DataFrame({"m": pd.Series([1, "a", 2.5, None, "1", 1], dtype=object)})
    column = infer_schema(df, EXACT).columns[0]
    assert column.type == LogicalType.CATEGORICAL
    assert column.domain == ("1", "2.5", "a")


def test_object_column_of_numbers_is_numeric() -> None:
    df = pd.DataFrame({"n": pd.Series([3, 1, None, 7], dtype=object)})
    column = infer_schema(df, EXACT).columns[0]
    assert (column.type, column.min, column.max) == (LogicalType.INTEGER, 1, 7)


def test_a_million_distinct_values_are_text() -> None:
    values = pd.Series([f"id-{i}" for i in range(1_000_000)])
    df = pd.DataFrame({"key": values, "cat": values.astype("category")})
    col = {c.name: c for c in infer_schema(df).columns}
    assert col["key"] == ColumnSchema(name="key", type=LogicalType.TEXT, unique=True)
    assert col["cat"].type == LogicalType.TEXT  # even a category dtype, past 1000 values
    assert col["cat"].domain is None


def test_column_order_is_kept() -> None:
    df = applications()
    reordered = df[list(reversed(df.columns))]
    assert infer_schema(reordered).names == list(reversed(df.columns))


def test_non_text_column_names_are_named_by_their_text() -> None:
    schema = infer_schema(pd.DataFrame({0: [1, 2], "b": [3, 4]}))
    assert schema.names == ["0", "b"]


def test_duplicate_column_names_cannot_be_inferred() -> None:
    with pytest.raises(UsageError, match="more than one column named 'a'"):
        infer_schema(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# --- YAML -----------------------------------------------------------------------------------


def test_yaml_round_trip_is_exact() -> None:
    df = applications()
    df["aware"] = pd.date_range("2024-03-01 12:00:00.123456789", periods=N, tz="Europe/Paris")
    df["empty"] = None
    df["inf"] = np.linspace(0, 1, N) / 3
    schema = infer_schema(df)
    assert schema_from_yaml(schema_to_yaml(schema), "s.yaml") == schema


def test_yaml_keeps_hand_set_options() -> None:
    schema = Schema(
        columns=(
            ColumnSchema(
                name="x",
                type=LogicalType.FLOAT,
                min=0,
                allow_infinite=True,
                severity={AnomalyKind.OUT_OF_RANGE: Severity.WARNING},
            ),
            ColumnSchema(name="yes", type=LogicalType.CATEGORICAL, domain=("yes", "no", "1")),
        ),
        severity={AnomalyKind.EXTRA_COLUMN: Severity.ERROR},
    )
    text = schema_to_yaml(schema)
    assert schema_from_yaml(text, "s.yaml") == schema
    assert "'yes'" in text and "'1'" in text  # quoted, so they stay text


def test_yaml_is_readable_and_says_how_to_edit_it() -> None:
    text = schema_to_yaml(infer_schema(applications()))
    assert text.startswith("# Conveyor data schema, format version 1, inferred from 200 rows.")
    assert "conveyor data validate DATA --schema" in text
    assert "docs/schema.md" in text
    assert "  domain: [east, north, south, west]\n" in text
    assert "- name: applied_at\n  type: datetime\n" in text
    assert "min: '2024-01-01T00:00:00'" in text
    assert "unique: true" in text  # shown only when true
    assert "unique: false" not in text


def test_save_and_load(tmp_path: Path) -> None:
    schema = infer_schema(applications())
    save_schema(schema, tmp_path / "schema.yaml")
    assert load_schema(tmp_path / "schema.yaml") == schema


def yaml_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        schema_from_yaml(text, "schemas/app.yaml")
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.message.startswith("schemas/app.yaml")
    return info.value


GOOD = """\
version: 1
columns:
  - name: age
    type: integer
    min: 18
  - name: region
    type: categorical
    domain: [north, south]
"""


def test_hand_written_minimal_schema_gets_defaults() -> None:
    schema = schema_from_yaml(GOOD, "s.yaml")
    assert schema.columns[0] == ColumnSchema(name="age", type=LogicalType.INTEGER, min=18)
    assert schema.columns[1].domain == ("north", "south")
    assert schema.rows is None


def test_unknown_column_key_names_key_path_and_suggests() -> None:
    err = yaml_error(GOOD.replace("    min: 18", "    mni: 18"))
    assert "schemas/app.yaml: columns[0].mni: unknown key" in err.message
    assert err.hint == "did you mean 'min'?"


def test_unknown_top_level_key_suggests() -> None:
    err = yaml_error(GOOD.replace("version: 1", "version: 1\nrow: 5"))
    assert "schemas/app.yaml: row: unknown key" in err.message
    assert err.hint == "did you mean 'rows'?"


def test_unknown_key_without_a_near_miss_lists_the_allowed_ones() -> None:
    err = yaml_error(GOOD.replace("    min: 18", "    zzz: 18"))
    assert err.hint is not None and "max_null_fraction" in err.hint and "domain" in err.hint


def test_misspelt_type_suggests_the_type() -> None:
    err = yaml_error(GOOD.replace("type: integer", "type: interger"))
    assert "columns[0].type:" in err.message
    assert err.hint == "did you mean 'integer'?"


def test_misspelt_severity_suggests() -> None:
    err = yaml_error(GOOD + "severity: {out_of_rnge: warning}\n")
    assert "severity.out_of_rnge" in err.message
    assert err.hint == "did you mean 'out_of_range'?"


def test_wrong_value_type_names_key_path() -> None:
    err = yaml_error(GOOD.replace("    min: 18", "    max_null_fraction: lots"))
    assert "columns[0].max_null_fraction:" in err.message
    assert "number" in err.message


def test_null_fraction_above_one_is_refused() -> None:
    err = yaml_error(GOOD.replace("    min: 18", "    max_null_fraction: 1.5"))
    assert "columns[0].max_null_fraction:" in err.message


def test_missing_required_key_is_named() -> None:
    err = yaml_error(GOOD.replace("    type: integer\n", ""))
    assert "columns[0].type: Field required" in err.message


def test_bound_of_the_wrong_kind_names_the_column() -> None:
    err = yaml_error(GOOD.replace("min: 18", "min: eighteen"))
    assert "columns[0] ('age').min: expected a finite number" in err.message


def test_range_on_a_categorical_column_is_refused() -> None:
    err = yaml_error(GOOD + "    max: 3\n")
    assert "columns[1] ('region').max: a categorical column has no range" in err.message


def test_categorical_needs_a_domain_and_only_it_has_one() -> None:
    assert "needs one" in yaml_error(GOOD.replace("    domain: [north, south]\n", "")).message
    err = yaml_error(GOOD.replace("    min: 18", "    domain: [1, 2]"))
    assert "columns[0] ('age').domain: a integer has none" in err.message


def test_min_above_max_is_refused() -> None:
    assert "greater than max" in yaml_error(GOOD.replace("min: 18", "min: 18\n    max: 3")).message


def test_datetime_bounds_are_iso_8601() -> None:
    text = "version: 1\ncolumns:\n  - {name: t, type: datetime, min: 2024-01-01, max: '2024-02-01T00:00:00+00:00'}\n"
    column = schema_from_yaml(text, "s.yaml").columns[0]
    assert column.min == datetime(2024, 1, 1)
    assert column.max == datetime(2024, 2, 1, tzinfo=UTC)
    err = yaml_error(text.replace("2024-01-01", "'last tuesday'"))
    assert "expected an ISO 8601 date-time" in err.message


def test_duplicate_column_in_schema_file_is_refused() -> None:
    err = yaml_error(GOOD + "  - name: age\n    type: float\n")
    assert "columns[2].name: 'age' is also columns[0]" in err.message


def test_newer_format_version_says_to_upgrade() -> None:
    err = yaml_error(GOOD.replace("version: 1", "version: 2"))
    assert "newer" in err.message
    assert err.hint is not None and "upgrade" in err.hint.lower()


def test_missing_version_is_named() -> None:
    assert "version: Field required" in yaml_error(GOOD.replace("version: 1\n", "")).message


def test_top_level_list_is_refused() -> None:
    assert "mapping" in yaml_error("- a\n- b\n").message


def test_yaml_syntax_error_names_file_and_line() -> None:
    err = yaml_error("version: 1\ncolumns: [\n")
    assert err.message.startswith("schemas/app.yaml:")


def test_yaml_tags_are_refused() -> None:
    yaml_error("version: !!python/object:os.system 1\ncolumns: []\n")


def test_missing_schema_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_schema(tmp_path / "schema.yaml")
    assert "no such schema file" in info.value.message
    assert info.value.hint is not None and "conveyor data schema infer" in info.value.hint


def test_schema_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_schema(tmp_path)


def test_inferred_ranges_leave_room_for_a_fresh_sample_but_keep_the_sign() -> None:
    df = pd.DataFrame(
        {"income": [100.0, 200.0, 300.0], "age": [20, 40, 60], "loss": [-5.0, -3.0, -1.0]}
    )
    col = {c.name: c for c in infer_schema(df).columns}
    assert (col["income"].min, col["income"].max) == (80.0, 320.0)
    assert (col["age"].min, col["age"].max) == (16, 64)
    assert col["loss"].min == pytest.approx(-5.4) and col["loss"].max == pytest.approx(-0.6)
    near = {c.name: c for c in infer_schema(pd.DataFrame({"d": [-5.0, -0.1]})).columns}
    assert near["d"].max == 0.0  # never seen positive: the margin stops at zero
    low = {c.name: c for c in infer_schema(pd.DataFrame({"n": [0.5, 10.0]})).columns}
    assert low["n"].min == 0.0  # never seen negative: stays non-negative
