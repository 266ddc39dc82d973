"""The prediction log: rows written to Parquet, partitioned by environment and hour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq
import pytest

from conveyor.errors import UsageError
from conveyor.serve.prediction_log import Entry, LogSettings, PredictionLog
from conveyor.serve.signature import Block, ColumnSpec, Signature

SIG = Signature(
    columns=(ColumnSpec(name="age", type="double"), ColumnSpec(name="region", type="string"))
)
T0 = datetime(2026, 3, 4, 5, 59, 59, tzinfo=UTC).timestamp()


def entry(request_id: str, received: float, ages: list[float]) -> Entry:
    regions = np.array([f"r{i}" for i in range(len(ages))], dtype=object)
    outputs = np.array([[1 - a / 100, a / 100] for a in ages])
    return Entry(
        request_id=request_id,
        protocol="v2",
        received=received,
        latency_s=0.002,
        columns=[np.array(ages), regions],
        outputs=outputs,
    )


def make_log(tmp_path, counts: list, **kw) -> PredictionLog:
    settings = LogSettings(url=str(tmp_path / "artifacts"), environment="test", **kw)
    return PredictionLog(
        settings,
        model="churn",
        version="3",
        signature=SIG,
        count=lambda outcome, rows: counts.append((outcome, rows)),
    )


def test_rows_are_written_per_hour_with_inputs_and_outputs(tmp_path) -> None:
    counts: list = []

    async def main() -> None:
        log = make_log(tmp_path, counts, flush_interval_s=60)
        log.start()
        log.record(entry("a", T0, [30.0, 40.0]))
        log.record(entry("b", T0 + 2, [50.0]))  # the next hour
        await log.close()

    asyncio.run(main())
    root = tmp_path / "artifacts" / "predictions" / "env=test"
    files = sorted(root.rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["hour=2026-03-04T05", "hour=2026-03-04T06"]
    assert all(f.name.startswith("part-") for f in files)
    assert not list(root.rglob("*.tmp"))
    first = pq.read_table(files[0]).to_pylist()
    assert [(r["request_id"], r["row"]) for r in first] == [("a", 0), ("a", 1)]
    assert first[1]["inputs"] == {"age": 40.0, "region": "r1"}
    assert first[1]["outputs"] == pytest.approx([0.6, 0.4])
    assert (first[0]["model"], first[0]["model_version"], first[0]["protocol"]) == (
        "churn",
        "3",
        "v2",
    )
    assert first[0]["latency_ms"] == pytest.approx(2.0)
    assert first[0]["timestamp"] == datetime.fromtimestamp(T0, UTC)
    assert counts == [("written", 3)]
    # A dictionary for the columns of few distinct strings only: trying one on measurements
    # made writing the log five times slower.
    meta = pq.ParquetFile(files[0]).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    dictionary = {path for path, used in encodings.items() if "RLE_DICTIONARY" in used}
    assert dictionary == {"model", "model_version", "protocol", "inputs.region"}


def test_requests_of_doubles_are_logged_row_by_row(tmp_path) -> None:
    sig = Signature.from_mlflow(
        '[{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]'
    )
    requests = [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]], [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]]]

    async def main() -> None:
        log = PredictionLog(
            LogSettings(url=str(tmp_path), environment="test", flush_interval_s=60),
            model="m",
            version="1",
            signature=sig,
        )
        log.start()
        for k, rows in enumerate(requests):
            columns = sig.convert_rows(rows, ["a", "b"])
            assert isinstance(columns, Block)  # one matrix per request, joined when written
            log.record(
                Entry(
                    request_id=f"r{k}",
                    protocol="invocations",
                    received=T0,
                    latency_s=0.001,
                    columns=columns,
                    outputs=np.array([a + b for a, b in rows]),
                )
            )
        await log.close()

    asyncio.run(main())
    (file,) = (tmp_path / "predictions").rglob("*.parquet")
    got = [
        (r["request_id"], r["row"], r["inputs"], r["outputs"])
        for r in pq.read_table(file).to_pylist()
    ]
    assert got == [
        ("r0", 0, {"a": 1.0, "b": 2.0}, 3.0),
        ("r0", 1, {"a": 3.0, "b": 4.0}, 7.0),
        ("r1", 0, {"a": 5.0, "b": 6.0}, 11.0),
        ("r2", 0, {"a": 7.0, "b": 8.0}, 15.0),
        ("r2", 1, {"a": 9.0, "b": 10.0}, 19.0),
        ("r2", 2, {"a": 11.0, "b": 12.0}, 23.0),
    ]


def test_enough_rows_trigger_a_write_and_a_full_queue_drops(tmp_path) -> None:
    counts: list = []

    async def main() -> None:
        log = make_log(tmp_path, counts, flush_interval_s=60, flush_rows=2, max_pending_rows=3)
        log.start()
        log.record(entry("a", T0, [1.0, 2.0]))
        for _ in range(50):
            await asyncio.sleep(0.01)
            if counts:
                break
        log.record(entry("b", T0, [1.0, 2.0]))
        log.record(entry("c", T0, [1.0, 2.0]))  # 4 > 3 pending: dropped
        await log.close()

    asyncio.run(main())
    assert counts == [("written", 2), ("dropped", 2), ("written", 2)]


def test_a_store_that_refuses_keeps_the_rows_for_the_next_write(tmp_path) -> None:
    counts: list = []
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "predictions").write_text("a file where a directory should be")

    async def main() -> None:
        log = make_log(tmp_path, counts)
        log.start()
        log.record(entry("a", T0, [1.0]))
        await log.flush()
        (tmp_path / "artifacts" / "predictions").unlink()
        await log.close()

    asyncio.run(main())
    assert counts == [("failed", 1), ("written", 1)]


def test_environment_names_never_become_odd_paths(tmp_path) -> None:
    with pytest.raises(UsageError, match="invalid environment name"):
        LogSettings(url=str(tmp_path), environment="../prod")
