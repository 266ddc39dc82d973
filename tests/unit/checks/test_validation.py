"""Validation against a schema: every anomaly kind, with counts and examples, and the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
    schema_from_yaml,
    schema_to_yaml,
)
from conveyor.checks.validation import Anomaly, ValidationReport, validate
from conveyor.core.checks import Severity, blocking_failures
from conveyor.errors import UsageError

N = 1000


def training() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    income = rng.normal(50_000, 8_000, N)
    income[:30] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(N),
            "age": rng.integers(18, 80, N),
            "income": income,
            "region": rng.choice(["north", "south", "east", "west"], N),
            "email": [f"user{i}@example.com" for i in range(N)],
            "applied_at": pd.date_range("2024-01-01", periods=N, freq="h", tz="UTC"),
            "defaulted": rng.random(N) < 0.2,
        }
    )


@pytest.fixture(scope="module")
def schema() -> Schema:
    return infer_schema(training(), InferOptions(range_margin=0.0))


def only(report: ValidationReport, kind: AnomalyKind) -> Anomaly:
    found = [a for a in report.anomalies if a.kind == kind]
    assert len(found) == 1, report.to_text()
    return found[0]


def test_clean_data_has_no_anomalies(schema: Schema) -> None:
    report = validate(training(), schema)
    assert report.anomalies == ()
    assert report.blocking is False
    assert report.rows == N
    assert report.checked == tuple(schema.names)
    results = report.check_results()
    assert [r.name for r in results] == ["schema"]
    assert results[0].passed is True
    assert results[0].metrics["columns_checked"] == len(schema.columns)


def test_column_order_is_not_an_anomaly(schema: Schema) -> None:
    df = training()
    assert validate(df[list(reversed(df.columns))], schema).anomalies == ()


def test_arrow_table_is_validated_like_its_frame(schema: Schema) -> None:
    table = pa.Table.from_pandas(training(), preserve_index=False)
    assert validate(table, schema).anomalies == ()


def test_missing_column_is_a_blocking_failure_never_a_pass(schema: Schema) -> None:
    report = validate(training().drop(columns=["age"]), schema)
    anomaly = only(report, AnomalyKind.MISSING_COLUMN)
    assert (anomaly.column, anomaly.severity) == ("age", Severity.ERROR)
    assert report.blocking is True
    assert "age" not in report.checked
    by_name = {r.name: r for r in report.check_results()}
    assert by_name["schema:age"].passed is False
    assert by_name["schema"].passed is False
    assert blocking_failures(list(by_name.values())) == [by_name["schema:age"], by_name["schema"]]


def test_extra_column_is_a_warning_that_does_not_block(schema: Schema) -> None:
    report = validate(training().assign(note="x"), schema)
    anomaly = only(report, AnomalyKind.EXTRA_COLUMN)
    assert (anomaly.column, anomaly.severity) == ("note", Severity.WARNING)
    assert report.blocking is False
    results = report.check_results()
    assert all(not r.passed and r.severity == Severity.WARNING for r in results)
    assert blocking_failures(results) == []


def test_too_many_nulls_counts_them(schema: Schema) -> None:
    df = training()
    df.loc[:199, "income"] = np.nan  # 20% against 4.5% allowed
    df.loc[:9, "region"] = None  # 1% where none are allowed
    report = validate(df, schema)
    by_column = {a.column: a for a in report.anomalies}
    assert set(by_column) == {"income", "region"}
    income = by_column["income"]
    assert (income.kind, income.count) == (AnomalyKind.NULLS, 200)
    assert income.metrics == {"null_fraction": 0.2, "max_null_fraction": 0.045}
    assert "200 nulls (20% of 1,000 rows); at most 4.5% allowed" in income.message
    assert by_column["region"].count == 10
    assert report.metrics["income"]["null_fraction"] == 0.2


def test_values_out_of_range_are_counted_with_distinct_examples(schema: Schema) -> None:
    df = training()
    df.loc[:9, "age"] = [-1, -1, 200, 5, 6, 7, 8, 9, 10, 11]  # min is 18, max 79
    report = validate(df, schema)
    anomaly = only(report, AnomalyKind.OUT_OF_RANGE)
    assert (anomaly.column, anomaly.count) == ("age", 10)
    assert anomaly.examples == (-1, 200, 5, 6, 7)
    assert anomaly.metrics == {"below": 9.0, "above": 1.0}
    assert "10 values outside [18, 79] (9 below, 1 above)" in anomaly.message


def test_datetime_range_compares_instants(schema: Schema) -> None:
    df = training()
    df.loc[0, "applied_at"] = pd.Timestamp("2023-12-31 23:59", tz="UTC")
    # the last value, written in another zone: the same instant, so in range
    df["applied_at"] = df["applied_at"].dt.tz_convert("Asia/Tokyo")
    anomaly = only(validate(df, schema), AnomalyKind.OUT_OF_RANGE)
    assert anomaly.count == 1
    assert anomaly.examples == ("2023-12-31T23:59:00",)


def test_iso_text_is_accepted_for_datetimes_and_other_text_is_a_type_anomaly() -> None:
    schema = Schema(
        columns=(ColumnSchema(name="t", type=LogicalType.DATETIME, min=datetime(2024, 1, 1)),)
    )
    ok = pd.DataFrame({"t": ["2024-01-02", "2024-03-01T10:00:00+02:00"]})
    assert validate(ok, schema).anomalies == ()
    early = pd.DataFrame({"t": ["2023-06-01", "2024-03-01"]})
    assert only(validate(early, schema), AnomalyKind.OUT_OF_RANGE).count == 1
    bad = pd.DataFrame({"t": ["2024-01-02", "soon", "later"]})
    anomaly = only(validate(bad, schema), AnomalyKind.TYPE)
    assert (anomaly.count, anomaly.examples) == (2, ("soon", "later"))


def test_unseen_categories_are_listed_most_frequent_first(schema: Schema) -> None:
    df = training()
    df.loc[:5, "region"] = ["mars", "mars", "mars", "moon", "moon", "venus"]
    anomaly = only(validate(df, schema), AnomalyKind.UNSEEN_CATEGORY)
    assert anomaly.column == "region"
    assert anomaly.count == 6  # rows
    assert anomaly.examples == ("mars", "moon", "venus")
    assert anomaly.example_counts == (3, 2, 1)
    assert anomaly.metrics == {"unseen_categories": 3.0}
    assert "3 values not in the domain, in 6 rows: 'mars' (3), 'moon' (2), 'venus' (1)" in (
        anomaly.message
    )


def test_unseen_categories_show_the_top_ten_and_count_the_rest(schema: Schema) -> None:
    df = training()
    df.loc[:24, "region"] = [f"new{i}" for i in range(25)]
    anomaly = only(validate(df, schema), AnomalyKind.UNSEEN_CATEGORY)
    assert len(anomaly.examples) == 10
    assert anomaly.count == 25
    assert anomaly.message.endswith("and 15 more")


def test_duplicates_in_a_unique_column(schema: Schema) -> None:
    df = training()
    df.loc[1:3, "id"] = 0  # 0 now appears 4 times
    df.loc[10, "id"] = 11  # 11 twice
    df.loc[20:21, "id"] = None  # nulls never count as repeats
    anomaly = only(validate(df, schema), AnomalyKind.DUPLICATE)
    assert anomaly.column == "id"
    assert anomaly.count == 4  # rows that repeat an earlier value
    assert anomaly.examples == (0, 11)
    assert anomaly.example_counts == (4, 2)


def test_infinity_in_a_float_column_is_flagged(schema: Schema) -> None:
    df = training()
    df.loc[100:102, "income"] = [np.inf, np.inf, -np.inf]
    report = validate(df, schema)
    anomaly = only(report, AnomalyKind.NON_FINITE)
    assert (anomaly.column, anomaly.count) == ("income", 3)
    assert anomaly.examples == ("inf", "-inf")
    assert anomaly.example_counts == (2, 1)
    assert report.for_column("income") == [anomaly]  # not out of range as well
    json.loads(report.to_json())  # infinities are written as text, so this is JSON


def test_allow_infinite_accepts_them() -> None:
    schema = Schema(columns=(ColumnSchema(name="x", type=LogicalType.FLOAT, allow_infinite=True),))
    assert validate(pd.DataFrame({"x": [1.0, np.inf]}), schema).anomalies == ()


def test_wrong_dtype_is_a_type_anomaly_with_examples(schema: Schema) -> None:
    df = training()
    df["defaulted"] = df["defaulted"].astype(int)
    anomaly = only(validate(df, schema), AnomalyKind.TYPE)
    assert (anomaly.column, anomaly.count) == ("defaulted", N)
    assert "expected boolean values, found int64" in anomaly.message
    assert len(anomaly.examples) == 5


def test_mixed_types_in_a_numeric_column_name_the_values_that_are_not_numbers(
    schema: Schema,
) -> None:
    df = training()
    df["age"] = df["age"].astype(object)
    df.loc[[3, 7], "age"] = ["n/a", "forty"]
    report = validate(df, schema)
    anomaly = only(report, AnomalyKind.TYPE)
    assert (anomaly.column, anomaly.count) == ("age", 2)
    assert anomaly.examples == ("n/a", "forty")
    assert "text that is not a number" in anomaly.message
    assert report.for_column("age") == [anomaly]


def test_integer_column_read_as_float_because_of_nulls_is_accepted() -> None:
    schema = Schema(columns=(ColumnSchema(name="n", type=LogicalType.INTEGER, min=0, max=9, max_null_fraction=0.5),))  # fmt: skip
    assert validate(pd.DataFrame({"n": [1.0, np.nan, 9.0]}), schema).anomalies == ()
    report = validate(pd.DataFrame({"n": [1.0, 2.5, np.inf]}), schema)
    anomaly = only(report, AnomalyKind.TYPE)
    assert anomaly.count == 2
    assert anomaly.examples == (2.5, "inf")


def test_severity_can_be_overridden_per_schema_and_per_column() -> None:
    text = """\
version: 1
severity: {extra_column: error}
columns:
  - name: x
    type: integer
    max: 10
    severity: {out_of_range: warning}
"""
    schema = schema_from_yaml(text, "s.yaml")
    report = validate(pd.DataFrame({"x": [1, 50], "y": [0, 0]}), schema)
    severities = {a.kind: a.severity for a in report.anomalies}
    assert severities == {
        AnomalyKind.OUT_OF_RANGE: Severity.WARNING,
        AnomalyKind.EXTRA_COLUMN: Severity.ERROR,
    }
    assert report.blocking is True


def test_info_anomalies_pass_but_are_reported() -> None:
    schema = Schema(
        columns=(ColumnSchema(name="x", type=LogicalType.INTEGER, max=10),),
        severity={AnomalyKind.OUT_OF_RANGE: Severity.INFO},
    )
    report = validate(pd.DataFrame({"x": [50]}), schema)
    assert len(report.anomalies) == 1
    results = report.check_results()
    assert all(r.passed and r.severity == Severity.INFO for r in results)


# --- edge cases from the issue --------------------------------------------------------------


def test_empty_data_is_checked_for_columns_only(schema: Schema) -> None:
    report = validate(training().iloc[0:0], schema)
    assert report.anomalies == ()
    assert report.rows == 0
    report = validate(pd.DataFrame(), schema)
    assert {a.kind for a in report.anomalies} == {AnomalyKind.MISSING_COLUMN}
    assert len(report.anomalies) == len(schema.columns)


def test_single_row(schema: Schema) -> None:
    df = training().iloc[50:51].copy()
    assert validate(df, schema).anomalies == ()
    df["age"] = 5
    assert only(validate(df, schema), AnomalyKind.OUT_OF_RANGE).count == 1


def test_all_null_column_where_nulls_are_not_allowed(schema: Schema) -> None:
    df = training()
    df["age"] = np.nan
    report = validate(df, schema)
    anomaly = only(report, AnomalyKind.NULLS)
    assert (anomaly.column, anomaly.count) == ("age", N)
    assert report.for_column("age") == [anomaly]  # no type anomaly without any value


def test_values_in_a_column_that_was_all_null_are_a_type_warning() -> None:
    schema = infer_schema(pd.DataFrame({"x": [None, None]}))
    assert schema.columns[0].type == LogicalType.NULL
    assert validate(pd.DataFrame({"x": [None, None, None]}), schema).anomalies == ()
    anomaly = only(validate(pd.DataFrame({"x": ["a", None, "b"]}), schema), AnomalyKind.TYPE)
    assert (anomaly.severity, anomaly.count, anomaly.examples) == (Severity.WARNING, 2, ("a", "b"))


def test_mixed_types_in_a_categorical_column_compare_by_text() -> None:
    schema = infer_schema(pd.DataFrame({"m": pd.Series([1, "a", "b"], dtype=object)}))
    ok = pd.DataFrame({"m": pd.Series(["1", "a", 1], dtype=object)})
    assert validate(ok, schema).anomalies == ()
    new = pd.DataFrame({"m": pd.Series([2, "a", 2.5], dtype=object)})
    assert only(validate(new, schema), AnomalyKind.UNSEEN_CATEGORY).examples == ("2", "2.5")


def test_a_million_unseen_values_in_a_categorical_column() -> None:
    schema = Schema(columns=(ColumnSchema(name="c", type=LogicalType.CATEGORICAL, domain=("a",)),))
    values = pd.Series([f"v{i}" for i in range(1_000_000)])
    anomaly = only(validate(pd.DataFrame({"c": values}), schema), AnomalyKind.UNSEEN_CATEGORY)
    assert anomaly.count == 1_000_000
    assert len(anomaly.examples) == 10
    assert anomaly.message.endswith("and 999,990 more")


def test_data_with_two_columns_of_one_name_is_refused(schema: Schema) -> None:
    df = pd.DataFrame([[1, 2]], columns=["age", "age"])
    with pytest.raises(UsageError, match="more than one column named 'age'"):
        validate(df, schema)


# --- report forms ---------------------------------------------------------------------------


def anomalous_report(schema: Schema) -> ValidationReport:
    df = training().drop(columns=["email"]).assign(**{"a|b": 1})
    df.loc[:2, "age"] = 500
    df.loc[:1, "region"] = "mars"
    return validate(df, schema)


def test_report_json_has_every_anomaly(schema: Schema) -> None:
    data = json.loads(anomalous_report(schema).to_json())
    assert data["blocking"] is True
    assert data["rows"] == N
    kinds = {(a["column"], a["kind"]) for a in data["anomalies"]}
    assert kinds == {
        ("email", "missing_column"),
        ("a|b", "extra_column"),
        ("age", "out_of_range"),
        ("region", "unseen_category"),
    }
    age = next(a for a in data["anomalies"] if a["column"] == "age")
    assert age["count"] == 3 and age["examples"] == [500]
    assert age["hint"].startswith("if these values are valid")


def test_report_markdown_is_a_table(schema: Schema) -> None:
    text = anomalous_report(schema).to_markdown()
    assert text.startswith("**Data validation**: 4 anomalies (3 errors, 1 warning)")
    assert "| severity | column | anomaly | count | details |" in text
    assert "| error | `age` | out_of_range | 3 |" in text
    assert "`a\\|b`" in text  # a pipe in a name does not break the table
    clean = validate(training(), schema).to_markdown()
    assert "no anomalies" in clean and "|" not in clean


def test_report_text_has_a_line_and_a_fix_per_anomaly(schema: Schema) -> None:
    lines = anomalous_report(schema).to_text().splitlines()
    assert lines[0].startswith("data validation: 4 anomalies")
    assert any(line.strip().startswith("error   email: missing_column") for line in lines)
    assert sum("fix:" in line for line in lines) == 4


def test_check_results_one_per_column_with_anomalies_and_an_overall_one(schema: Schema) -> None:
    results = anomalous_report(schema).check_results(name="applications")
    names = [r.name for r in results]
    assert names == [
        "applications:age",
        "applications:region",
        "applications:email",
        "applications:a|b",
        "applications",
    ]
    assert all(r.kind == "data" for r in results)
    age = results[0]
    assert (age.passed, age.severity) == (False, Severity.ERROR)
    assert age.metrics["out_of_range"] == 3.0
    assert age.details["anomalies"][0]["kind"] == "out_of_range"
    overall = results[-1]
    assert (overall.passed, overall.severity) == (False, Severity.ERROR)
    assert overall.metrics["errors"] == 3.0 and overall.metrics["warnings"] == 1.0
    assert "email" not in overall.details["checked"]


def test_datetime_bounds_in_messages_are_iso() -> None:
    schema = Schema(
        columns=(
            ColumnSchema(name="t", type=LogicalType.DATETIME, max=datetime(2024, 1, 1, tzinfo=UTC)),
        )
    )
    df = pd.DataFrame({"t": pd.to_datetime(["2025-01-01"], utc=True)})
    anomaly = only(validate(df, schema), AnomalyKind.OUT_OF_RANGE)
    assert anomaly.message == (
        "1 value above max '2024-01-01T00:00:00+00:00'; e.g. '2025-01-01T00:00:00'"
    )


def test_data_always_satisfies_the_schema_inferred_from_it() -> None:
    rng = np.random.default_rng(11)
    n = 300
    df = pd.DataFrame(
        {
            "uint": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
            "nullable_int": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
            "nullable_float": pd.array(
                [None if i % 5 == 0 else i / 3 for i in range(n)], dtype="Float64"
            ),
            "float32": rng.random(n).astype(np.float32),
            "object_bool": pd.Series([i % 2 == 0 for i in range(n)], dtype=object),
            "object_num": pd.Series([i if i % 3 else 2.5 for i in range(n)], dtype=object),
            "mixed": pd.Series([i % 4 if i % 2 else f"s{i % 4}" for i in range(n)], dtype=object),
            "lists": pd.Series([[i % 3] for i in range(n)], dtype=object),
            "int_categories": pd.Categorical(rng.integers(0, 5, n)),
            "timedelta": pd.to_timedelta(rng.integers(0, 10, n), unit="s"),
            "paris": pd.date_range(
                "2024-03-31 00:00:00.0000001", periods=n, freq="17min", tz="Europe/Paris"
            ),
            "dates": pd.Series(
                [datetime(2024, 1, 1 + i % 28).date() for i in range(n)], dtype=object
            ),
            "bytes": pd.Series([b"x%d" % (i % 3) for i in range(n)], dtype=object),
        }
    )
    schema = infer_schema(df)
    report = validate(df, schema)
    assert report.anomalies == (), report.to_text()
    assert validate(df, schema_from_yaml(schema_to_yaml(schema), "s.yaml")).anomalies == ()
