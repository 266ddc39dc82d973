"""The prediction log: rows written to Parquet, partitioned by environment and hour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq
import pytest

from conveyor.errors import UsageError
from conveyor.serve.prediction_log import Entry, LogSettings, PredictionLog
from conveyor.serve.signature import ColumnSpec, Signature

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
