"""Offline shadow: a real package replayed against a real prediction log (written by the
service's own PredictionLog writer, on disk and on an fsspec URL). The same model agrees; a
model trained differently does not; no logs, too few requests and inputs the candidate cannot
take each fail with a message that says what to do."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from conveyor.config_delivery import ShadowGateConfig
from conveyor.deploy.replay import read_logged_requests, replay
from conveyor.registry.package import read_package
from conveyor.serve import ColumnSpec, ServedModel, Signature
from conveyor.serve.prediction_log import Entry, LogSettings, PredictionLog
from integration.package_support import TRUSTED, make_packaged

T0 = datetime(2026, 3, 4, 5, 0, 0, tzinfo=UTC).timestamp()
REQUESTS = 150
GATE = ShadowGateConfig(min_requests=100, min_agreement=0.99, compare="scores")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """The packaged model ``pk:1``, served from its verified package."""
    _root, _mv, directory = make_packaged(tmp_path_factory.mktemp("shadow") / "proj")
    return ServedModel.from_package(read_package(directory), TRUSTED)


def traffic(n: int = REQUESTS, seed: int = 1) -> list[dict[str, list[Any]]]:
    """``n`` requests of one to three rows each, as a client would send them."""
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(n):
        rows = int(rng.integers(1, 4))
        requests.append(
            {
                "a": rng.normal(size=rows).tolist(),
                "b": rng.normal(size=rows).tolist(),
                "k": rng.integers(0, 5, size=rows).tolist(),
            }
        )
    return requests


def write_log(
    url: str, environment: str, model: ServedModel, requests: list[dict[str, list[Any]]]
) -> None:
    """Answer ``requests`` with ``model`` and log them as the service does, one a second."""

    async def main() -> None:
        log = PredictionLog(
            LogSettings(url=url, environment=environment, flush_interval_s=60),
            model=model.name,
            version=model.version,
            signature=model.signature,
        )
        log.start()
        for i, raw in enumerate(requests):
            columns = model.signature.convert(raw, len(raw["a"]))
            log.record(
                Entry(
                    request_id=f"r{i:04d}",
                    protocol="invocations",
                    received=T0 + i,
                    latency_s=0.002,
                    columns=columns,
                    outputs=model.predict(columns),
                )
            )
        await log.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def artifacts(served: ServedModel, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("artifacts"))
    write_log(url, "staging", served, traffic())
    return url


def retrained(served: ServedModel) -> ServedModel:
    """A model of the same inputs, trained on other labels."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"a": rng.normal(size=400), "b": rng.normal(size=400), "k": rng.integers(0, 5, 400)}
    )
    labels = (frame.b > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=1).fit(frame, labels)
    return ServedModel.from_estimator(
        model, name="pk", version=2, signature=served.signature, examples=frame.head(20)
    )


def by_name(report: Any) -> dict[str, Any]:
    return {r.name: r for r in report.results}


def test_the_same_model_agrees_on_every_logged_row(served: ServedModel, artifacts: str) -> None:
    report = replay(artifacts, "staging", served, GATE)
    assert report.passed, report.to_markdown()
    assert (report.source, report.candidate, report.requests) == ("staging", "pk:1", REQUESTS)
    assert report.rows == sum(len(r["a"]) for r in traffic())
    assert report.agreement == 1.0 and report.max_abs_diff == 0.0
    assert report.versions == ["1"]
    assert report.logged_p99_ms == pytest.approx(2.0)
    assert 0 < report.candidate_p50_ms <= report.candidate_p99_ms
    assert list(by_name(report)) == ["shadow.requests", "shadow.inputs", "shadow.agreement"]
    assert all(r.passed for r in report.results)
    doc = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert doc["passed"] is True and doc["agreement"] == 1.0
    markdown = report.to_markdown()
    assert "Shadow replay of pk:1 against 'staging': passed" in markdown
    assert "| `shadow.agreement` | pass |" in markdown


def test_a_model_trained_differently_disagrees_and_fails(
    served: ServedModel, artifacts: str
) -> None:
    report = replay(artifacts, "staging", retrained(served), GATE)
    assert not report.passed
    agreement = by_name(report)["shadow.agreement"]
    assert not agreement.passed and report.agreement < 0.5
    assert report.max_abs_diff > 0.1
    assert f"of {report.rows:,} rows agree with the logged predictions" in agreement.message
    assert "below the limit of 99.0%" in agreement.message
    assert by_name(report)["shadow.requests"].passed
    assert "| `shadow.agreement` | FAIL |" in report.to_markdown()


def test_no_logged_predictions_is_a_failed_report_saying_what_to_do(
    served: ServedModel, tmp_path: Path
) -> None:
    report = replay(str(tmp_path), "staging", served, GATE)
    assert not report.passed and report.requests == 0 and report.versions == []
    [check] = report.results
    assert check.name == "shadow.requests" and not check.passed
    assert "no predictions are logged for environment 'staging'" in check.message
    assert "send traffic to 'staging'" in check.message
    assert json.loads(json.dumps(report.to_json(), allow_nan=False))["agreement"] == 0.0


def test_too_few_logged_requests_fails_but_still_compares(
    served: ServedModel, artifacts: str
) -> None:
    report = replay(artifacts, "staging", served, GATE.model_copy(update={"min_requests": 500}))
    assert not report.passed and report.agreement == 1.0
    requests = by_name(report)["shadow.requests"]
    assert not requests.passed
    assert requests.message == (
        "only 150 requests are logged in 'staging', fewer than the 500 the shadow gate needs; "
        "send more traffic to 'staging' or lower shadow.min_requests"
    )


def test_max_requests_replays_only_the_newest(served: ServedModel, artifacts: str) -> None:
    report = replay(artifacts, "staging", served, GATE.model_copy(update={"max_requests": 50}))
    assert report.requests == 50 and not report.passed  # 50 is fewer than min_requests
    table = read_logged_requests(artifacts, "staging", max_rows=10_000, max_requests=50)
    ids = list(dict.fromkeys(table.column("request_id").to_pylist()))
    assert ids == [f"r{i:04d}" for i in range(149, 99, -1)]
    assert read_logged_requests(artifacts, "staging", max_rows=7).num_rows == 7


def test_a_candidate_needing_a_column_the_logs_lack_fails_naming_it(
    served: ServedModel, artifacts: str
) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({n: rng.normal(size=50) for n in ("a", "b", "zip")})
    candidate = ServedModel.from_estimator(
        LogisticRegression().fit(frame, frame.a > 0), name="pk", version=3, examples=frame
    )
    report = replay(artifacts, "staging", candidate, GATE)
    inputs = by_name(report)["shadow.inputs"]
    assert not report.passed and not inputs.passed
    assert inputs.message == (
        "the candidate's input column 'zip' is not in the requests logged in 'staging' "
        "(they hold a, b, k)"
    )
    assert "shadow.agreement" not in by_name(report)


def test_a_candidate_whose_column_type_does_not_fit_fails_naming_it(
    served: ServedModel, artifacts: str
) -> None:
    frame = pd.DataFrame({"a": [0.1, 0.9, 0.2, 0.8], "b": [1.0, 0.0, 1.0, 0.0]})
    frame["k"] = [True, False, True, False]
    types = {"a": "double", "b": "double", "k": "boolean"}
    signature = Signature.from_mlflow([{"name": n, "type": t} for n, t in types.items()])
    model = LogisticRegression().fit(frame, [1, 0, 1, 0])
    candidate = ServedModel.from_estimator(model, signature=signature, examples=frame)
    inputs = by_name(replay(artifacts, "staging", candidate, GATE))["shadow.inputs"]
    assert not inputs.passed and inputs.details["column"] == "k"
    assert inputs.message.startswith(
        "the logged column 'k' (int64) does not fit the candidate's boolean column"
    )


def test_logs_on_an_fsspec_url_replay_and_since_bounds_them(served: ServedModel) -> None:
    url = f"memory://shadow-{uuid.uuid4().hex}"
    write_log(url, "prod", served, traffic(120, seed=3))
    report = replay(url, "prod", served, GATE)
    assert report.passed and report.requests == 120 and report.agreement == 1.0
    since = datetime.fromtimestamp(T0 + 100, UTC)
    recent = read_logged_requests(url, "prod", max_rows=10_000, since=since)
    assert set(recent.column("request_id").to_pylist()) == {f"r{i:04d}" for i in range(100, 120)}
    assert read_logged_requests(url, "nowhere", max_rows=10).num_rows == 0


def test_logs_of_versions_with_incompatible_inputs_keep_the_newest(tmp_path: Path) -> None:
    def log_one(spec: ColumnSpec, value: Any, version: str, at: float) -> None:
        async def main() -> None:
            log = PredictionLog(
                LogSettings(url=str(tmp_path), environment="e"),
                model="m",
                version=version,
                signature=Signature(columns=(spec,)),
            )
            log.start()
            column = np.empty(1, dtype=spec.dtype)
            column[0] = value
            log.record(
                Entry(
                    request_id=f"r{version}",
                    protocol="v2",
                    received=at,
                    latency_s=0.001,
                    columns=[column],
                    outputs=np.array([0.5]),
                )
            )
            await log.close()

        asyncio.run(main())

    log_one(ColumnSpec(name="a", type="double"), 1.0, "1", T0)
    log_one(ColumnSpec(name="a", type="string"), "x", "2", T0 + 1)
    rows = read_logged_requests(str(tmp_path), "e", max_rows=10).to_pylist()
    assert [(r["model_version"], r["inputs"]) for r in rows] == [("2", {"a": "x"})]


def test_labels_mode_compares_predicted_classes_not_scores(
    served: ServedModel, artifacts: str
) -> None:
    """A retrained model's scores all differ from the logged ones, yet most of its predicted
    classes are the same: the labels mode (the default) judges those."""
    other = retrained(served)
    by_scores = replay(artifacts, "staging", other, GATE)
    by_labels = replay(artifacts, "staging", other, GATE.model_copy(update={"compare": "labels"}))
    assert by_labels.agreement > by_scores.agreement
    assert "compared as predicted labels" in by_name(by_labels)["shadow.agreement"].message
