"""Batch prediction: `conveyor predict MODEL INPUT OUTPUT` checks, chunks, quarantines and records.

One project is trained, registered and packaged once for the module; every test writes its
own input files and runs real jobs against it (in-process through the library, or through the
real command in a subprocess).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers import conveyor, open_and_run, write_files

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step


@step
def data(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a, b, k = rng.normal(size=n), rng.normal(size=n), rng.integers(0, 5, size=n)
    y = (a + 0.3 * k + 0.5 * rng.normal(size=n) > 0.5).astype(int)
    return pd.DataFrame({"a": a, "b": b, "k": k, "label": y})


@step
def train(data: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(data[["a", "b", "k"]], data["label"])


@pipeline
def main():
    train(data())
"""

CONFIG = "name: bp\npipelines:\n  main: pipelines/main.py:main\n"
FEATURES = ["a", "b", "k"]
PROBA = ["proba_0", "proba_1"]
# Bad values in chunk 5 of 6 (rows 4,000-4,999 with --chunk-rows 1000), one problem each.
BAD = {4321: ("a", "abc"), 4400: ("b", ""), 4500: ("b", "inf"), 4600: ("k", "2.5")}
REASONS = {
    4321: "a: expected double, got 'abc'",
    4400: "b: missing value in a required column",
    4500: "b: not a finite number: 'inf'",
    4600: "k: expected long, got '2.5'",
}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project whose model is trained, registered as bp:1 and packaged; and the model."""
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import register_model
    from conveyor.store import queries

    root = write_files(
        tmp_path_factory.mktemp("batch") / "proj",
        {"conveyor.yaml": CONFIG, "pipelines/main.py": PIPELINE},
    )
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    with open_project(root, environ={}) as project:
        mv = register_model(project.metadata, name="bp", run_ref=outcome.run_id, step="train")
        info = build_package(project, mv, golden=rows(50, seed=1))
        model = project.artifacts.load(queries.find_artifact(project.metadata, mv.digest))
    return {"root": root, "mv": info.version, "model": model}


def rows(n: int, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "k": rng.integers(0, 5, size=n),
            "region": np.where(rng.normal(size=n) > 0, "north", "south"),
        }
    )


def bad_csv(path: Path, n: int = 5500) -> Path:
    """A CSV of ``n`` rows with the BAD values written in."""
    frame = rows(n).astype({"a": object, "b": object, "k": object})
    for row, (column, value) in BAD.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


def expected(model: Any, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[FEATURES])


def predict(root: Path, *args: str) -> Any:
    return conveyor("predict", *args, cwd=root)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def test_predictions_are_the_models_in_one_chunk_or_many(packaged, tmp_path: Path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.batch import predict_batch

    data = rows(5500)
    source = tmp_path / "in.parquet"
    data.to_parquet(source)
    seen: list[Any] = []
    with open_project(packaged["root"], environ={}) as project:
        many = predict_batch(
            project,
            "bp:1",
            source,
            tmp_path / "many.parquet",
            chunk_rows=1000,
            progress=seen.append,
        )
        one = predict_batch(project, packaged["mv"], source, tmp_path / "one.parquet")
    assert (many.chunks, one.chunks) == (6, 1)
    assert (many.rows, many.predicted, many.quarantined) == (5500, 5500, 0)
    assert [p.rows for p in seen] == [0, 1000, 2000, 3000, 4000, 5000, 5500]
    assert {p.total for p in seen} == {5500} and seen[0].run_id == many.run_id
    out = pd.read_parquet(tmp_path / "many.parquet")
    # Every input column, in order, then one probability per class of the model.
    assert list(out.columns) == [*data.columns, *PROBA]
    pd.testing.assert_frame_equal(out, pd.read_parquet(tmp_path / "one.parquet"))
    pd.testing.assert_frame_equal(out[data.columns], data)
    assert np.array_equal(out[PROBA].to_numpy(), expected(packaged["model"], data))


def test_csv_through_the_command_with_chosen_columns(packaged, tmp_path: Path) -> None:
    data = rows(2500)
    source = tmp_path / "in.csv"
    data.to_csv(source, index=False)
    proc = predict(
        packaged["root"], "bp", str(source), str(tmp_path / "out.csv"), "--chunk-rows", "1000",
        "--columns", "id",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "predicted 2,500 of 2,500 rows with bp:1 (predict_proba)" in proc.stdout
    assert "2,500 of about 2,500 rows read in 3 chunks" in proc.stderr  # a plain line: no TTY
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["id", *PROBA]
    assert out["id"].tolist() == list(range(2500))
    written = pd.read_csv(source)  # the job's view of the CSV: pandas' own float parsing
    assert np.array_equal(out[PROBA].to_numpy(), expected(packaged["model"], written))


def test_bad_rows_refuse_the_job_and_leave_no_output(packaged, tmp_path: Path) -> None:
    root = packaged["root"]
    source = bad_csv(tmp_path / "in.csv")
    earlier = tmp_path / "earlier.parquet"
    earlier.write_bytes(b"an older result")
    for output in (tmp_path / "new.parquet", earlier):
        proc = predict(root, "bp:1", str(source), str(output), "--chunk-rows", "1000", "--json")
        assert proc.returncode == 1, proc.stderr
        assert "4 of 1,000 rows in chunk 5 (rows 4,000-4,999) are not valid input for bp:1" in (
            proc.stderr
        )
        assert "a: 1 row: expected double (e.g. 'abc')" in proc.stderr
        assert "b: 2 rows:" not in proc.stderr  # one line per column and kind of problem
        assert "b: 1 row: missing value in a required column" in proc.stderr
        assert "--quarantine FILE" in proc.stderr
        report = json.loads(proc.stdout)
        assert (report["status"], report["rows"], report["chunks"]) == ("refused", 5000, 5)
    assert not (tmp_path / "new.parquet").exists()
    assert earlier.read_bytes() == b"an older result"
    assert leftovers(tmp_path) == []
    shown = json.loads(conveyor("runs", "show", report["run_id"], "--json", cwd=root).stdout)
    assert (shown["pipeline"], shown["status"]) == ("predict:bp", "failed")
    checks = {c["name"]: c for c in shown["checks"]}
    assert not checks["input:a"]["passed"] and checks["input:a"]["severity"] == "error"
    assert checks["input"]["metrics"]["bad_rows"] == 4.0


def test_quarantine_sets_bad_rows_aside_with_their_reasons(packaged, tmp_path: Path) -> None:
    source = bad_csv(tmp_path / "in.csv")
    proc = predict(
        packaged["root"], "bp:1", str(source), str(tmp_path / "out.parquet"), "--chunk-rows",
        "1000", "--quarantine", str(tmp_path / "bad.csv"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["predicted"], report["quarantined"], report["chunks"]) == (5496, 4, 6)
    assert "set aside 4 rows" in proc.stderr
    aside = pd.read_csv(tmp_path / "bad.csv", dtype=str, keep_default_na=False)
    assert list(aside.columns) == [*rows(1).columns, "_row", "_reason"]
    assert aside["_row"].astype(int).tolist() == sorted(BAD)
    assert dict(zip(aside["_row"].astype(int), aside["_reason"], strict=True)) == REASONS
    assert aside.loc[0, "a"] == "abc" and aside.loc[0, "id"] == "4321"  # as they were read
    out = pd.read_parquet(tmp_path / "out.parquet")
    good = rows(5500).drop(index=list(BAD)).reset_index(drop=True)
    # A CSV's other columns are copied as the text they were (leading zeros and all); the
    # model's inputs have the signature's types.
    assert out["id"].tolist() == good["id"].astype(str).tolist()
    assert str(out["k"].dtype) == "int64" and str(out["a"].dtype) == "float64"
    assert np.allclose(out[PROBA].to_numpy(), expected(packaged["model"], good), rtol=1e-12)
    # Set aside, the bad rows are a warning on the run, not a failure.
    shown = json.loads(
        conveyor("runs", "show", report["run_id"], "--json", cwd=packaged["root"]).stdout
    )
    assert shown["status"] == "succeeded"
    assert {c["name"]: c["severity"] for c in shown["checks"] if not c["passed"]} == {
        "input:a": "warning",
        "input:b": "warning",
        "input:k": "warning",
        "input": "warning",
    }


def test_a_missing_model_input_is_a_usage_error_naming_it(packaged, tmp_path: Path) -> None:
    root = packaged["root"]
    source = tmp_path / "in.parquet"
    rows(100).drop(columns=["k"]).to_parquet(source)
    before = json.loads(conveyor("runs", "list", "--json", "-n", "1000", cwd=root).stdout)
    proc = predict(root, "bp:1", str(source), str(tmp_path / "out.parquet"))
    assert proc.returncode == 2, proc.stderr
    assert "missing column 'k', which bp:1 needs" in proc.stderr
    assert "the model's inputs are: a (double), b (double), k (long)" in proc.stderr
    assert not (tmp_path / "out.parquet").exists()
    after = json.loads(conveyor("runs", "list", "--json", "-n", "1000", cwd=root).stdout)
    assert len(after) == len(before)  # refused before anything ran


def test_the_job_is_a_run_whose_lineage_reaches_the_training_run(packaged, tmp_path) -> None:
    root, mv = packaged["root"], packaged["mv"]
    source = tmp_path / "in.parquet"
    rows(300).to_parquet(source)
    proc = predict(root, "bp:1", str(source), str(tmp_path / "out.parquet"), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    listed = json.loads(conveyor("runs", "list", "--json", "-n", "1000", cwd=root).stdout)
    run = next(r for r in listed if r["id"] == report["run_id"])
    assert (run["pipeline"], run["status"]) == ("predict:bp", "succeeded")
    assert run["params"]["model"] == "bp:1" and run["params"]["input"] == str(source.resolve())
    output_digest = hashlib.sha256((tmp_path / "out.parquet").read_bytes()).hexdigest()
    assert report["output_digest"] == output_digest
    for ref in (f"{report['run_id']}:predict.predictions", output_digest[:16]):
        lineage = json.loads(conveyor("lineage", ref, "--json", cwd=root, check=True).stdout)
        job = lineage["upstream"]
        assert (job["run_id"], job["step"]) == (report["run_id"], "predict")
        assert job["inputs"] == {"model": mv.digest, "package": mv.package_digest}
        input_digest = hashlib.sha256(source.read_bytes()).hexdigest()
        assert job["files"] == {str(source.resolve()): input_digest}
        (train,) = job["upstream"]
        assert (train["run_id"], train["step"], train["via"]) == (mv.run_id, "train", ["model"])
    # ...and the model version's lineage shows the job downstream of it.
    used = json.loads(conveyor("lineage", "bp:1", "--json", cwd=root, check=True).stdout)
    assert report["run_id"] in {u["run_id"] for u in used["downstream"]}
    shown = json.loads(conveyor("runs", "show", report["run_id"], "--json", cwd=root).stdout)
    assert shown["metrics"]["predicted"] == 300.0
    assert [c["name"] for c in shown["checks"]] == ["input"] and shown["checks"][0]["passed"]


def test_the_packages_data_schema_is_checked_too(packaged, tmp_path: Path) -> None:
    """A package holding schema.yaml (ranges, domains) sets aside rows outside them."""
    from conveyor.engine.project import open_project
    from conveyor.registry.batch import predict_batch
    from conveyor.registry.package import open_package
    from conveyor.registry.versions import register_model, set_package

    schema = """
        version: 1
        columns:
        - {name: a, type: float, max_null_fraction: 0.0, min: -10.0, max: 10.0}
        - {name: region, type: categorical, max_null_fraction: 0.0, domain: [north, south]}
    """
    with open_project(packaged["root"], environ={}) as project:
        directory = open_package(project, packaged["mv"], tmp_path / "package")
        write_files(directory, {"schema.yaml": schema})
        manifest = json.loads((directory / "conveyor.json").read_text())
        digest = hashlib.sha256((directory / "schema.yaml").read_bytes()).hexdigest()
        manifest["files"]["schema.yaml"] = digest
        (directory / "conveyor.json").write_text(json.dumps(manifest))
        stored = project.artifacts.save(directory)
        mv = register_model(
            project.metadata, name="bp", run_ref=packaged["mv"].run_id, step="train"
        )
        mv = set_package(project.metadata, mv, stored.digest)
        data = rows(400)
        data.loc[7, "a"], data.loc[8, "region"] = 12.5, "west"
        data.to_parquet(tmp_path / "in.parquet")
        report = predict_batch(
            project, mv, tmp_path / "in.parquet", tmp_path / "out.parquet",
            quarantine=tmp_path / "bad.parquet",
        )  # fmt: skip
    assert (report.predicted, report.quarantined) == (398, 2)
    aside = pd.read_parquet(tmp_path / "bad.parquet")
    assert aside["_reason"].tolist() == [
        "a: outside [-10.0, 10.0]: '12.5'",
        "region: not in the domain: 'west'",
    ]
    assert {c.name for c in report.checks if not c.passed} == {"input:a", "input:region", "input"}


def test_every_signature_type_is_checked_row_by_row() -> None:
    from conveyor.registry.batch import InputColumn, Tally, check_rows

    columns = [
        InputColumn(name="flag", type="boolean"),
        InputColumn(name="when", type="datetime", required=False),  # may be missing
        InputColumn(name="name", type="string"),
        InputColumn(name="n", type="integer"),
        InputColumn(name="x", type="float", required=False),
        InputColumn(name="cat", type="string"),  # a pandas category of text is text
    ]
    frame = pd.DataFrame(
        {
            "flag": pd.Series([True, "false", "maybe", None, True], dtype=object),
            "when": pd.Series(["2024-01-01T00:00:00Z", None, "later", "2024-02-01", None]),
            "name": pd.Series(["a", 1, None, "b", "c"], dtype=object),
            "n": pd.Series(["1", "3000000000", "2.0", "x", "5"], dtype=str),
            "x": pd.Series([1.0, np.nan, 1e39, -np.inf, 2.0]),
            "cat": pd.Series(["u", "v", "u", "v", "u"], dtype="category"),
        }
    )
    tally = Tally()
    bad, reasons, typed = check_rows(frame, columns, tally)
    assert bad.tolist() == [False, True, True, True, False]
    assert reasons.tolist() == [
        "",
        "name: expected string, got '1'; n: out of range for integer: '3000000000'",
        "flag: expected boolean, got 'maybe'; when: expected datetime, got 'later'; "
        "name: missing value in a required column; x: out of range for float: '1e+39'",
        "flag: missing value in a required column; n: expected integer, got 'x'; "
        "x: not a finite number: '-inf'",
        "",
    ]
    assert typed["flag"].tolist()[:2] == [True, False]
    assert typed["when"].iloc[0] == pd.Timestamp("2024-01-01")  # as naive UTC
    assert {(p.column, str(p.kind)): p.rows for p in tally.problems}[("n", "type")] == 1


def test_mistakes_are_usage_errors_before_anything_runs(packaged, tmp_path: Path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.errors import UsageError
    from conveyor.registry.batch import predict_batch
    from conveyor.registry.versions import register_model
    from conveyor.store import queries

    source, clash = tmp_path / "in.parquet", tmp_path / "clash.parquet"
    rows(10).to_parquet(source)
    rows(10).assign(proba_1=0.5).to_parquet(clash)
    with open_project(packaged["root"], environ={}) as project:
        unpackaged = register_model(
            project.metadata, name="bp-raw", run_ref=packaged["mv"].run_id, step="train"
        )
        runs = len(queries.list_runs(project.metadata, limit=1000))
        cases = [
            ((tmp_path / "nope.csv", tmp_path / "o.csv"), {}, "no such file"),
            ((source, tmp_path / "out.json"), {}, "unknown file format '.json'"),
            ((source, source), {}, "must be different files"),
            ((source, tmp_path / "o.csv"), {"quarantine": tmp_path / "o.csv"}, "different"),
            ((source, tmp_path / "o.csv"), {"columns": ["idd"]}, "did you mean 'id'?"),
            ((source, tmp_path / "o.csv"), {"chunk_rows": 0}, "at least 1"),
            ((clash, tmp_path / "o.csv"), {}, "has a column named 'proba_1', which the job"),
        ]
        for (given, output), options, message in cases:
            with pytest.raises(UsageError) as err:
                predict_batch(project, packaged["mv"], given, output, **options)
            assert message in f"{err.value.message} {err.value.hint}", (options, err.value)
        with pytest.raises(UsageError, match="has no package yet"):
            predict_batch(project, unpackaged, source, tmp_path / "o.csv")
        assert len(queries.list_runs(project.metadata, limit=1000)) == runs
    assert not (tmp_path / "o.csv").exists()


def test_an_input_without_good_rows_gives_files_with_the_columns_only(packaged, tmp_path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.batch import predict_batch

    data = rows(3)
    data["a"] = np.nan
    data.to_parquet(tmp_path / "in.parquet")
    with open_project(packaged["root"], environ={}) as project:
        report = predict_batch(
            project, "bp:1", tmp_path / "in.parquet", tmp_path / "out.parquet",
            quarantine=tmp_path / "bad.parquet",
        )  # fmt: skip
    assert (report.rows, report.predicted, report.quarantined) == (3, 0, 3)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out.empty and list(out.columns) == [*data.columns, *PROBA]
    assert len(pd.read_parquet(tmp_path / "bad.parquet")) == 3


def test_a_directory_of_parquet_files_with_partitions(packaged, tmp_path: Path) -> None:
    """Hive partitions become columns; an index pandas saved in a file is not a column."""
    from conveyor.engine.project import open_project
    from conveyor.registry.batch import predict_batch

    data = rows(1200)
    for region in ("north", "south"):
        part = tmp_path / "in" / f"region={region}"
        part.mkdir(parents=True)
        data[data["region"] == region].drop(columns="region").to_parquet(part / "part.parquet")
    (tmp_path / "in" / "_SUCCESS").write_text("")
    with open_project(packaged["root"], environ={}) as project:
        report = predict_batch(
            project, "bp:1", tmp_path / "in", tmp_path / "out.parquet", chunk_rows=250
        )
    assert (report.rows, report.predicted) == (1200, 1200)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["id", "a", "b", "k", "region", *PROBA]
    out = out.sort_values("id").reset_index(drop=True)
    assert out["id"].tolist() == list(range(1200))
    assert out["region"].astype(str).tolist() == data["region"].tolist()
    got, want = out[PROBA].to_numpy(), expected(packaged["model"], data)
    # chunks of 250 rows and one call on all rows may differ in the last bits of a float
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
