"""`conveyor data`: schema inference, validation, profiles and drift from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import conveyor


def batch(path: Path, n: int = 3000, seed: int = 0, shift: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "income": rng.normal(50_000 + shift * 20_000, 10_000, n),
            "age": rng.integers(18, 90, n),
            "region": rng.choice(
                ["north", "south", "east"], n, p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4]
            ),
        }
    ).to_parquet(path) if path.suffix == ".parquet" else None
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ref = batch(tmp_path / "ref.parquet", seed=1)
    same = batch(tmp_path / "same.parquet", seed=2)
    shifted = batch(tmp_path / "shifted.parquet", seed=3, shift=1.0)
    csv = tmp_path / "bad.csv"
    df = pd.read_parquet(same)
    df.loc[:2, "age"] = -5
    df.loc[5, "region"] = "atlantis"
    df.to_csv(csv, index=False)
    return {"ref": ref, "same": same, "shifted": shifted, "bad": csv, "dir": tmp_path}


def test_infer_then_validate(files: dict[str, Path]) -> None:
    schema = files["dir"] / "schema.yaml"
    proc = conveyor(
        "data", "schema", "infer", str(files["ref"]), "-o", str(schema), cwd=files["dir"]
    )
    assert proc.returncode == 0, proc.stderr
    assert "region" in schema.read_text() and "north" in schema.read_text()
    again = conveyor(
        "data", "schema", "infer", str(files["ref"]), "-o", str(schema), cwd=files["dir"]
    )
    assert again.returncode == 2 and "--force" in again.stderr

    clean = conveyor(
        "data", "validate", str(files["same"]), "--schema", str(schema), cwd=files["dir"]
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr

    bad = conveyor("data", "validate", str(files["bad"]), "--schema", str(schema), cwd=files["dir"])
    assert bad.returncode == 1
    assert "age" in bad.stdout and "-5" in bad.stdout and "atlantis" in bad.stdout
    data = json.loads(
        conveyor(
            "data", "validate", str(files["bad"]), "-s", str(schema), "--json", cwd=files["dir"]
        ).stdout
    )
    kinds = {(a["column"], a["kind"]) for a in data["anomalies"]}
    assert ("age", "out_of_range") in kinds and ("region", "unseen_category") in kinds
    md = conveyor(
        "data", "validate", str(files["bad"]), "-s", str(schema), "--markdown", cwd=files["dir"]
    ).stdout
    assert "| error | `age` | out_of_range" in md


def test_drift_between_files_and_against_a_profile(files: dict[str, Path]) -> None:
    same = conveyor("data", "drift", str(files["ref"]), str(files["same"]), cwd=files["dir"])
    assert same.returncode == 0, same.stdout
    shifted = conveyor(
        "data", "drift", str(files["ref"]), str(files["shifted"]), "--json", cwd=files["dir"]
    )
    assert shifted.returncode == 1
    report = json.loads(shifted.stdout)
    verdicts = {f["column"]: f["drifted"] for f in report["features"]}
    assert verdicts["income"] is True and report["drifted"] is True
    methods = {f["column"]: f["method"] for f in report["features"]}
    assert methods["income"] == "wasserstein"  # more than 1,000 reference values

    profile = files["dir"] / "ref-profile.json"
    conveyor("data", "profile", str(files["ref"]), "-o", str(profile), cwd=files["dir"], check=True)
    again = conveyor(
        "data", "drift", str(profile), str(files["shifted"]), "--json", cwd=files["dir"]
    )
    assert again.returncode == 1
    assert {f["column"]: f["drifted"] for f in json.loads(again.stdout)["features"]} == verdicts

    text = conveyor(
        "data", "drift", str(files["ref"]), str(files["shifted"]), cwd=files["dir"]
    ).stdout
    assert "income" in text and "wasserstein" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "validate", "missing.parquet", "-s", "x.yaml"), "missing.parquet"),
        (("data", "drift", "REF", "CUR", "--method", "income=kss"), "did you mean 'ks'?"),
        (("data", "drift", "REF", "CUR", "--method", "income"), "expected COLUMN=VALUE"),
        (("data", "schema", "infer", "notes.txt", "-o", "s.yaml"), "notes.txt"),
    ],
)
def test_mistakes_exit_2(files: dict[str, Path], args: tuple[str, ...], message: str) -> None:
    (files["dir"] / "notes.txt").write_text("hello")
    real = [
        str(files["ref"]) if a == "REF" else str(files["same"]) if a == "CUR" else a for a in args
    ]
    proc = conveyor(*real, cwd=files["dir"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
