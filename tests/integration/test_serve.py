"""The prediction service over real HTTP: a real uvicorn on a free port, httpx, Triton's own
v2 client, prometheus_client's parser, schemathesis and hypothesis against both APIs, every
kind of bad input, overload, timeouts, SIGTERM draining, micro-batching and the prediction log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from conveyor.serve import (
    BatchSettings,
    Limits,
    LogSettings,
    PredictionService,
    ServedModel,
    ServeSettings,
    Signature,
)
from conveyor.serve.run import uvicorn_options
from helpers import free_port

COLUMNS = ["age", "income", "children", "score"]
SIGNATURE = Signature.from_mlflow(
    [
        {"name": "age", "type": "double"},
        {"name": "income", "type": "double"},
        {"name": "children", "type": "long"},
        {"name": "score", "type": "double"},
    ]
)
rng = np.random.default_rng(7)
FRAME = pd.DataFrame(
    {
        "age": rng.uniform(18, 80, 400),
        "income": rng.normal(3000, 800, 400),
        "children": rng.integers(0, 4, 400),
        "score": rng.normal(0, 1, 400),
    }
)
LABELS = ((FRAME.age > 40) ^ (FRAME.score > 0)).astype(int)
MODEL = LogisticRegression(max_iter=500).fit(FRAME, LABELS)


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread, as ``conveyor serve`` does (its HTTP protocol
    included); yield its base URL; always stop it."""
    port = free_port()
    options = {**uvicorn_options("127.0.0.1", port, drain_timeout_s=5), "log_level": "warning"}
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def served(estimator: Any = MODEL, **kw: Any) -> ServedModel:
    return ServedModel.from_estimator(
        estimator, name="churn", version=3, signature=SIGNATURE, examples=FRAME.head(50), **kw
    )


def expected(rows: pd.DataFrame) -> np.ndarray:
    return MODEL.predict_proba(rows[COLUMNS])


def split(rows: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": COLUMNS, "data": rows[COLUMNS].values.tolist()}}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def base_url(log_dir: Path) -> Iterator[str]:
    settings = ServeSettings(
        limits=Limits(max_rows=1000, body_timeout_s=1.0),
        prediction_log=LogSettings(url=str(log_dir), environment="test", flush_interval_s=0.2),
    )
    with running(PredictionService(served(), settings)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def alive(base_url: str) -> bool:
    return httpx.get(f"{base_url}/v2/health/live", timeout=10).status_code == 200


# -- the two APIs, with real clients ---------------------------------------------------------


def test_v2_with_tritons_client(base_url: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=base_url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("churn") and client.is_model_ready("churn", "3")
        assert not client.is_model_ready("other")
        meta = client.get_model_metadata("churn")
        assert [i["name"] for i in meta["inputs"]] == COLUMNS
        assert meta["outputs"][0] == {"name": "predictions", "datatype": "FP64", "shape": [-1, 2]}
        rows = FRAME.tail(7)
        for binary in (True, False):  # the binary tensor extension (the default), then JSON
            inputs = []
            for name in COLUMNS:
                values = rows[name].to_numpy()
                tensor = triton.InferInput(
                    name, [len(rows)], "INT64" if name == "children" else "FP64"
                )
                tensor.set_data_from_numpy(values, binary_data=binary)
                inputs.append(tensor)
            wanted = [triton.InferRequestedOutput("predictions", binary_data=binary)]
            result = client.infer("churn", inputs, outputs=wanted, request_id=f"t-{binary}")
            np.testing.assert_allclose(result.as_numpy("predictions"), expected(rows), atol=1e-12)
            assert result.get_response()["id"] == f"t-{binary}"
        matrix = triton.InferInput("input-0", [len(rows), 4], "FP64")
        matrix.set_data_from_numpy(rows[COLUMNS].to_numpy(dtype=np.float64))
        result = client.infer("churn", [matrix])  # no outputs named: binary by default
        np.testing.assert_allclose(result.as_numpy("predictions"), expected(rows), atol=1e-12)
    finally:
        client.close()


@pytest.mark.parametrize(
    "form",
    ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"],
)
def test_invocations_in_every_mlflow_form(client: httpx.Client, form: str) -> None:
    rows = FRAME.head(5)
    records = rows[COLUMNS].to_dict(orient="records")
    if form == "csv":
        response = client.post(
            "/invocations",
            content=rows[COLUMNS].to_csv(index=False),
            headers={"content-type": "text/csv"},
        )
    else:
        body = {
            "dataframe_split": split(rows),
            "dataframe_records": {"dataframe_records": records},
            "instances": {"instances": records},
            "inputs": {"inputs": {c: rows[c].tolist() for c in COLUMNS}},
        }[form]
        response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected(rows), atol=1e-12)
    assert response.headers["x-request-id"]


def test_metrics_in_prometheus_format(client: httpx.Client) -> None:
    client.post("/invocations", json=split(FRAME.head(2)))
    client.post("/invocations", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        (s.labels["route"], s.labels["code"]): s.value
        for s in families["conveyor_serve_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("/invocations", "200")] >= 1 and requests[("/invocations", "400")] >= 1
    latency = families["conveyor_serve_request_duration_seconds"]
    assert latency.type == "histogram"
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
    assert any(s.labels["le"] == "+Inf" and s.labels["route"] == "/invocations" for s in buckets)
    (in_flight,) = families["conveyor_serve_requests_in_flight"].samples
    assert in_flight.value == 0
    (info,) = families["conveyor_serve_model_info"].samples
    assert info.labels == {"model": "churn", "version": "3"} and info.value == 1
    rows = [
        s for s in families["conveyor_serve_predicted_rows"].samples if s.name.endswith("_total")
    ]
    assert rows[0].value >= 2


def test_prediction_log_rows_land_in_their_partition(client: httpx.Client, log_dir: Path) -> None:
    rows = FRAME.iloc[100:103]
    response = client.post("/invocations", json=split(rows), headers={"x-request-id": "log-me-1"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "log-me-1"
    hours = {(datetime.now(UTC) + timedelta(minutes=m)).strftime("%Y-%m-%dT%H") for m in (-2, 0, 2)}
    deadline = time.monotonic() + 15
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        for path in (log_dir / "predictions" / "env=test").glob("hour=*/part-*.parquet"):
            assert path.parent.name.removeprefix("hour=") in hours
            found += [r for r in pq.read_table(path).to_pylist() if r["request_id"] == "log-me-1"]
    assert [r["row"] for r in sorted(found, key=lambda r: r["row"])] == [0, 1, 2]
    found.sort(key=lambda r: r["row"])
    assert found[1]["inputs"]["age"] == rows.age.iloc[1]
    assert found[1]["inputs"]["children"] == rows.children.iloc[1]
    np.testing.assert_allclose([r["outputs"] for r in found], expected(rows), atol=1e-12)
    assert {(r["model"], r["model_version"], r["protocol"]) for r in found} == {
        ("churn", "3", "invocations")
    }


# -- bad input: each refused with a clear 4xx, the service alive afterwards -------------------

GOOD = split(FRAME.head(2))["dataframe_split"]


def post(client: httpx.Client, body: Any, content_type: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/invocations", content=content, headers={"content-type": content_type})


BAD = {
    "malformed JSON": (lambda c: post(c, b'{"dataframe_split": {'), 400, "not valid JSON"),
    "wrong dtype": (
        lambda c: post(c, {"dataframe_split": {**GOOD, "data": [[30, "rich", 1, 0.5]]}}),
        422,
        "column 'income', row 0: expected a number, got string 'rich'",
    ),
    "float for an integer": (
        lambda c: post(
            c, {"dataframe_records": [{"age": 30, "income": 1, "children": 1.5, "score": 0}]}
        ),
        422,
        "column 'children', row 0: expected an integer",
    ),
    "missing column": (
        lambda c: post(c, {"dataframe_records": [{"age": 30, "income": 1, "children": 1}]}),
        422,
        "missing column 'score'",
    ),
    "extra column": (
        lambda c: post(
            c, {"dataframe_split": {"columns": [*COLUMNS, "zip"], "data": [[1, 2, 3, 4, 5]]}}
        ),
        400,
        "unknown column 'zip'",
    ),
    "NaN in CSV": (
        lambda c: post(c, b"age,income,children,score\n30,nan,1,0\n", "text/csv"),
        422,
        "column 'income', row 0: NaN is not accepted",
    ),
    "NaN literal in JSON": (
        lambda c: post(c, b'{"dataframe_split": {"columns": ["age"], "data": [[NaN]]}}'),
        400,
        "NaN and Infinity are not JSON",
    ),
    "infinity": (
        lambda c: post(c, b'{"instances": [[1e999, 1, 1, 1]]}'),
        400,
        "not valid JSON",
    ),
    "infinity in CSV": (
        lambda c: post(c, b"age,income,children,score\n30,1,1,-inf\n", "text/csv"),
        422,
        "column 'score', row 0: infinity is not accepted",
    ),
    "null in a required column": (
        lambda c: post(c, {"instances": [[None, 1, 1, 1]]}),
        422,
        "column 'age', row 0: is null; the column is required",
    ),
    "empty batch": (
        lambda c: post(c, {"dataframe_split": {**GOOD, "data": []}}),
        400,
        "has no rows",
    ),
    "batch over the limit": (
        lambda c: post(c, {"instances": [[1, 2, 3, 4]] * 1001}),
        413,
        "1001 rows; at most 1000",
    ),
    "wrong content type": (
        lambda c: post(c, b"age=1", "application/x-www-form-urlencoded"),
        415,
        "this route accepts application/json or text/csv",
    ),
    "no content type": (
        lambda c: c.post("/invocations", content=b"{}", headers={"content-type": ""}),
        415,
        "no content type",
    ),
    "v2 wrong datatype": (
        lambda c: c.post(
            "/v2/models/churn/infer",
            json={
                "inputs": [
                    {"name": n, "shape": [1], "datatype": "BYTES", "data": ["x"]} for n in COLUMNS
                ]
            },
        ),
        422,
        "datatype BYTES cannot carry the double column 'age'",
    ),
    "v2 unknown model": (
        lambda c: c.post("/v2/models/nope/infer", json={"inputs": []}),
        404,
        "model 'nope' is not served here",
    ),
    "v2 unknown version": (
        lambda c: c.get("/v2/models/churn/versions/9"),
        404,
        "'churn:9' is not served",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_clear_4xx(client: httpx.Client, base_url: str, case: str) -> None:
    send, status, words = BAD[case]
    response = send(client)
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"] + body.get("hint", "")
    assert len(response.content) < 600  # the message, never the schema or the payload
    assert alive(base_url)


def raw_request(
    base_url: str, head: bytes, body_parts: Iterator[bytes] | None = None, pause: float = 0
) -> bytes:
    """Send a request over a plain socket (body parts with pauses); return the response."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # the server may refuse before the body is sent
            for part in body_parts or ():
                sock.sendall(part)
                time.sleep(pause)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def test_a_50_mb_body_is_413_before_it_is_sent(base_url: str) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    started = time.monotonic()
    response = raw_request(base_url, head)  # not one byte of the 50 MB is sent
    assert response.startswith(b"HTTP/1.1 413 ")
    assert b"larger than the limit of 10485760 bytes" in response
    assert b"connection: close" in response.lower()
    assert time.monotonic() - started < 10
    assert alive(base_url)


def test_a_streamed_body_past_the_limit_is_413(base_url: str) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"x" * (1 << 20)
    parts = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12))  # 12 MB, never finished
    response = raw_request(base_url, head, parts)
    assert response.startswith(b"HTTP/1.1 413 ")
    assert alive(base_url)


def test_a_slow_drip_body_is_408(base_url: str) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    response = raw_request(base_url, head, (b"{" for _ in range(40)), pause=0.1)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 1 s" in response
    assert time.monotonic() - started < 10
    assert alive(base_url)


def test_pipelined_requests_get_their_answers_in_order_and_close_comes_after(
    base_url: str,
) -> None:
    """Responses are sent in one write per loop turn: pipelined requests still get theirs
    in order, each whole, and a refusal that closes the connection is sent before it
    closes."""
    rows = FRAME.head(3)
    heads = []
    for k in range(3):
        body = json.dumps(split(rows.iloc[[k]])).encode()
        heads.append(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: pipelined-%d\r\nContent-Length: %d\r\n\r\n%s" % (k, len(body), body)
        )
    refused = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 2\r\n\r\n<>"
    response = raw_request(base_url, b"".join(heads) + refused)  # all sent at once
    answers = response.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200", b"200", b"415"]
    want = expected(rows)
    for k, answer in enumerate(answers[:3]):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"x-request-id: pipelined-%d" % k in head.lower()
        length = int(
            next(h for h in head.lower().split(b"\r\n") if h.startswith(b"content-length")).split(
                b":"
            )[1]
        )
        assert len(body) == length
        np.testing.assert_allclose(json.loads(body)["predictions"], want[k : k + 1])
    assert b"connection: close" in answers[3].lower()
    assert answers[3].endswith(b"}")  # the whole JSON error, then the server closed
    assert alive(base_url)


# -- fuzzing: no 5xx -------------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(base_url: str) -> None:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/invocations", "/v2/models/{model_name}/infer"}
    seen: dict[int, int] = {}
    for op in operations:
        heavy = op.method.upper() == "POST"  # GETs without parameters have no negative cases
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if heavy
            else (GenerationMode.POSITIVE,)
        )
        for mode in modes:

            @settings(
                max_examples=60 if heavy else 5,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, timeout=20)
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                case.validate_response(response, checks=[not_a_server_error])

            check()
    assert 200 in seen and any(400 <= code < 500 for code in seen)
    assert not any(code >= 500 for code in seen)
    assert alive(base_url)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
CELL = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4), st.just([])
)
ROW_OF = st.lists(CELL, min_size=0, max_size=6)
PAYLOADS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {
                    "columns": st.lists(st.sampled_from([*COLUMNS, "x"]), max_size=5),
                    "data": st.lists(ROW_OF, max_size=3),
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "dataframe_records": st.lists(
                st.dictionaries(st.sampled_from([*COLUMNS, "x"]), CELL), max_size=3
            )
        }
    ),
    st.fixed_dictionaries({"instances": st.lists(ROW_OF, max_size=3)}),
    st.fixed_dictionaries(
        {"inputs": st.dictionaries(st.sampled_from(COLUMNS), st.lists(CELL, max_size=3))}
    ),
)
TENSORS = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from([*COLUMNS, "input-0"]),
            "shape": st.lists(st.integers(-1, 4), min_size=0, max_size=3),
            "datatype": st.sampled_from(["FP64", "FP32", "INT64", "INT8", "BOOL", "BYTES", "FP99"]),
            "data": st.lists(CELL, max_size=8),
        }
    ),
    max_size=5,
)


def test_hypothesis_payloads_never_get_a_5xx(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=20) as c:

        @settings(
            max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(
            payload=PAYLOADS,
            tensors=TENSORS,
            ident=st.one_of(st.none(), st.text(max_size=5), st.integers()),
        )
        def check(payload: Any, tensors: Any, ident: Any) -> None:
            body = json.dumps(payload, allow_nan=True).encode()
            response = c.post(
                "/invocations", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code < 500, response.text
            request = {"inputs": tensors} if ident is None else {"id": ident, "inputs": tensors}
            response = c.post("/v2/models/churn/infer", content=json.dumps(request, allow_nan=True))
            assert response.status_code < 500, response.text

        check()
    assert alive(base_url)


# -- load: timeouts, shedding, batching, draining ---------------------------------------------


class Slow:
    """A model that takes ``delay`` seconds per call (set after loading)."""

    delay = 0.0

    def predict_proba(self, x: Any) -> np.ndarray:
        time.sleep(self.delay)
        x = np.asarray(x, dtype=np.float64)
        return np.column_stack([1 - x[:, 0] / 100, x[:, 0] / 100])


@pytest.mark.parametrize("batching", [None, BatchSettings()], ids=["alone", "micro-batched"])
def test_timeouts_are_504_and_overload_is_503_with_retry_after(
    batching: BatchSettings | None,
) -> None:
    model = served(Slow())
    model.estimator.delay = 2.0
    # inline_s=0: the model was fast when timed at load; every call goes to a worker thread
    settings = ServeSettings(
        limits=Limits(predict_timeout_s=1.0, max_in_flight=2), inline_s=0, batching=batching
    )
    with running(PredictionService(model, settings)) as url:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=20) as c:
                return await asyncio.gather(
                    *(c.post("/invocations", json=split(FRAME.head(1))) for _ in range(4))
                )

        responses = asyncio.run(burst())
        codes = sorted(r.status_code for r in responses)
        assert codes == [503, 503, 504, 504]
        shed = next(r for r in responses if r.status_code == 503)
        assert shed.headers["retry-after"] == "1" and "requests in flight" in shed.json()["error"]
        late = next(r for r in responses if r.status_code == 504)
        assert "longer than the limit of 1 s" in late.json()["error"]
        assert alive(url)


class SlowLogistic:
    """The logistic regression, 30 ms per call: concurrent requests pile up behind it."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, x: Any) -> np.ndarray:
        time.sleep(0.03)
        self.calls.append(len(x))
        return MODEL.predict_proba(pd.DataFrame(np.asarray(x), columns=COLUMNS))


def test_micro_batching_answers_each_request_with_its_own_rows() -> None:
    model = served(SlowLogistic())
    settings = ServeSettings(batching=BatchSettings(max_batch_rows=64, max_wait_s=0.05))
    rows = FRAME.iloc[200:224]
    with running(PredictionService(model, settings)) as url:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=20) as c:
                return await asyncio.gather(
                    *(c.post("/invocations", json=split(rows.iloc[[i]])) for i in range(len(rows)))
                )

        responses = asyncio.run(burst())
        for i, response in enumerate(responses):
            assert response.status_code == 200
            np.testing.assert_allclose(
                response.json()["predictions"], expected(rows.iloc[[i]]), atol=1e-12
            )
        text = httpx.get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {s.name: s.value for s in families["conveyor_serve_batch_requests"].samples}
    calls = samples["conveyor_serve_batch_requests_count"]
    # the load-time timing calls are not counted; the 24 requests took fewer model calls
    assert samples["conveyor_serve_batch_requests_sum"] == 24 and calls < 24
    assert max(model.estimator.calls) > 1


class Counting:
    """A model that takes ``delay`` seconds per call and counts the rows it predicts."""

    delay = 0.0

    def __init__(self) -> None:
        self.rows = 0

    def predict_proba(self, x: Any) -> np.ndarray:
        time.sleep(self.delay)
        self.rows += len(x)
        return np.column_stack([np.zeros(len(x)), np.ones(len(x))])


def status_count(url: str, code: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return sum(
        s.value
        for s in families["conveyor_serve_requests"].samples
        if s.name == "conveyor_serve_requests_total"
        and s.labels == {"route": "/invocations", "code": code}
    )


@pytest.mark.parametrize("batching", [False, True], ids=["threads", "micro-batching"])
def test_requests_whose_clients_left_are_not_predicted_and_free_their_place(
    batching: bool,
) -> None:
    model = served(Counting())
    model.estimator.delay, model.estimator.rows = 0.5, 0  # the calls timed at load not counted
    settings = ServeSettings(
        limits=Limits(max_in_flight=4),
        inline_s=0,  # every call waits for a worker thread
        batching=BatchSettings(max_batch_rows=1) if batching else None,
    )
    body = json.dumps(split(FRAME.head(1))).encode()
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with running(PredictionService(model, settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        clients = [socket.create_connection((host, int(port)), timeout=20) for _ in range(4)]
        try:
            for sock in clients:
                sock.sendall(head + body)
            deadline = time.monotonic() + 20
            while in_flight(url) < 4:  # one in the model, three waiting: the limit
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            for sock in clients:
                sock.close()
        while in_flight(url) > 0:  # the clients left: their places are free at once
            assert time.monotonic() < deadline, "abandoned requests still hold their places"
            time.sleep(0.01)
        response = httpx.post(f"{url}/invocations", json=split(FRAME.head(1)), timeout=20)
        assert response.status_code == 200  # not 503: nothing abandoned is in flight
        assert status_count(url, "499") == 4
    # the model answered the one abandoned request it had started, and the new one; the three
    # that were still waiting were never predicted
    assert model.estimator.rows == 2


SERVER_SCRIPT = """
import sys, time
import numpy as np
from conveyor.serve import ServedModel, ServeSettings, Signature
from conveyor.serve.run import serve

class Slow:
    delay = 0.0
    def predict_proba(self, x):
        time.sleep(self.delay)
        return np.column_stack([np.zeros(len(x)), np.ones(len(x))])

model = ServedModel.from_estimator(
    Slow(), name="slow", signature=Signature.from_mlflow([{"name": "x", "type": "double"}])
)
model.estimator.delay = 0.8
serve(model, settings=ServeSettings(inline_s=0), port=int(sys.argv[1]))
"""


def in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families["conveyor_serve_requests_in_flight"].samples[0].value


def test_sigterm_lets_requests_in_flight_complete_then_exits_0(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SERVER_SCRIPT))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(
                httpx.post(f"{url}/invocations", json={"instances": [[1.0]]}, timeout=20)
            )

        callers = [threading.Thread(target=call) for _ in range(3)]
        for t in callers:
            t.start()
        while in_flight(url) < 3:  # one in the model, two waiting for it
            assert time.monotonic() < deadline + 30
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        for t in callers:
            t.join(20)
        assert [r.status_code for r in results] == [200, 200, 200]
        assert proc.wait(20) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=2)
        assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_a_model_that_turns_slow_leaves_the_event_loop() -> None:
    model = served(Slow())  # timed fast at load: small requests are predicted inline
    settings = ServeSettings(limits=Limits(predict_timeout_s=0.1))
    with running(PredictionService(model, settings)) as url:
        model.estimator.delay = 0.3
        codes = [
            httpx.post(f"{url}/invocations", json=split(FRAME.head(1)), timeout=20).status_code
            for _ in range(4)
        ]
    # inline calls cannot be cut short; after three slow ones, calls run where the limit holds
    assert codes == [200, 200, 200, 504]


# -- the command, end to end: a registered, packaged model, two workers ------------------------

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step


@step
def data(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    k = rng.integers(0, 5, size=n)
    return pd.DataFrame({"a": a, "b": b, "k": k, "label": (a + 0.2 * k > 0.4).astype(int)})


@step
def train(rows: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(rows[["a", "b", "k"]], rows["label"])


@pipeline
def main():
    train(data())
"""

CLI = (
    "from conveyor.cli import main as m; "
    "m.COMMANDS.setdefault('serve', ('conveyor.cli.serve_cmd:serve', 'Serve a model.')); "
    "m.main()"
)


@pytest.mark.slow
def test_conveyor_serve_a_package_with_two_workers(tmp_path: Path) -> None:
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package, open_package
    from conveyor.registry.versions import get_version, register_model
    from helpers import open_and_run, write_files

    root = write_files(
        tmp_path / "proj",
        {
            "conveyor.yaml": "name: sv\npipelines:\n  main: pipelines/main.py:main\n",
            "pipelines/main.py": PIPELINE,
        },
    )
    outcome = open_and_run(root)
    assert outcome.status == "succeeded"
    golden = pd.DataFrame({"a": [0.5, -1.0, 2.0], "b": [0.0, 1.0, -1.0], "k": [0, 3, 4]})
    with open_project(root, environ={}) as project:
        mv = register_model(project.metadata, name="lr", run_ref=outcome.run_id, step="train")
        build_package(project, mv, golden=golden)
        package = open_package(project, get_version(project.metadata, "lr", 1))
    golden_out = json.loads((package / "golden" / "predictions.json").read_text())["predictions"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "serve",
            "lr:1",
            "--port",
            str(port),
            "--workers",
            "2",
            "-e",
            "staging",
            "--log-interval",
            "0.2",
        ],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        body = {"dataframe_split": {"columns": ["a", "b", "k"], "data": golden.values.tolist()}}
        for i in range(20):  # fresh connections, so both workers answer some
            response = httpx.post(
                f"{url}/invocations", json=body, headers={"x-request-id": f"e2e-{i}"}
            )
            assert response.status_code == 200, response.text
            np.testing.assert_allclose(response.json()["predictions"], golden_out, atol=1e-9)
        assert httpx.get(f"{url}/v2/models/lr").json()["versions"] == ["1"]
        for _ in range(3):  # whichever worker answers, the counts are the sum over both
            families = {
                f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
            }
            answered = sum(
                s.value
                for s in families["conveyor_serve_requests"].samples
                if s.labels.get("route") == "/invocations" and s.labels.get("code") == "200"
            )
            assert answered == 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    logged = pq.read_table(
        root / ".conveyor" / "artifacts" / "predictions" / "env=staging"
    ).to_pylist()
    assert len(logged) == 60 and {r["model_version"] for r in logged} == {"1"}
    assert {r["request_id"] for r in logged} == {f"e2e-{i}" for i in range(20)}
